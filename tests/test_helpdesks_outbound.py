"""Helpdesk API calls go only to the vendors' hosts, and never to a private, loopback or link-local
address the deployment did not allow; every refusal happens before a socket opens.

No test here sends a packet anywhere but 127.0.0.1: private addresses are only ever *resolved*, by a
patched `socket.getaddrinfo`, and any attempt to connect outside loopback fails the test.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask, request

from app.helpdesks import HELPDESKS, kustomer, outbound, zendesk
from sandbox.serve import ServerThread


@pytest.fixture
def no_sockets(monkeypatch):
    """Fail the test if anything connects, anywhere."""

    def refuse(*args, **kwargs):
        pytest.fail(f"a socket was opened: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def resolving_to(monkeypatch, *addresses: str) -> list[str]:
    """Make every name resolve to `addresses`; the names asked for are returned as they are asked."""
    asked: list[str] = []

    def fake(host, port, *args, **kwargs):
        asked.append(host)
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port),
            )
            for address in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8200",
        "https://10.0.0.5",
        "https://169.254.169.254",
        "http://acme.zendesk.com",
        "https://acme.zendesk.com?x=",
        "https://acme.zendesk.com/?next=/admin",
        "https://acme.zendesk.com#top",
        "https://acme.zendesk.com/api/v2",
        "https://evil.example/.zendesk.com",
        "https://acme.zendesk.com.evil.example",
        "https://zendesk.com",
        "https://user:pw@acme.zendesk.com",
        "https://acme.zendesk.com:8443",
        "https://acme.zendesk.com\\@evil.example",
        "ftp://acme.zendesk.com",
    ],
)
def test_a_base_url_off_the_vendors_https_hosts_is_refused(url, no_sockets):
    with pytest.raises(outbound.OutboundRefused):
        outbound.check_base_url(url, zendesk.API_HOSTS)


def test_a_vendor_base_url_is_kept_without_its_trailing_slash():
    assert (
        outbound.check_base_url("https://Acme.zendesk.com/", zendesk.API_HOSTS) == "https://Acme.zendesk.com"
    )
    assert outbound.check_base_url("https://acme.api.kustomerapp.com", kustomer.API_HOSTS)


def test_only_the_deployments_exact_base_urls_may_be_local():
    allowed = ["http://127.0.0.1:8200"]
    assert outbound.check_base_url("http://127.0.0.1:8200/", zendesk.API_HOSTS, allowed) == allowed[0]
    with pytest.raises(outbound.OutboundRefused):
        outbound.check_base_url("http://127.0.0.1:8201", zendesk.API_HOSTS, allowed)


def test_every_vendor_with_an_api_names_its_hosts():
    for helpdesk in HELPDESKS.values():
        if helpdesk.fetch_customer is not None or helpdesk.api_url:
            assert helpdesk.api_hosts, helpdesk.name
        if helpdesk.api_url:
            outbound.check_base_url(helpdesk.api_url, helpdesk.api_hosts)


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "127.0.0.1",
        "0.0.0.0",  # noqa: S104 - only resolved, never bound or contacted
        "100.64.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
def test_a_vendor_host_resolving_to_a_non_public_address_is_refused_before_connecting(
    monkeypatch, no_sockets, address
):
    resolving_to(monkeypatch, address)
    with pytest.raises(outbound.OutboundRefused, match=r"not a public address"):
        zendesk.fetch_customer("https://acme.zendesk.com", "token", "1", outbound.session(), 5)
    with pytest.raises(outbound.OutboundRefused):
        kustomer.check_key("https://api.kustomerapp.com", "token", outbound.session(), 5)


def test_one_non_public_address_among_public_ones_is_enough_to_refuse(monkeypatch, no_sockets):
    resolving_to(monkeypatch, "93.184.216.34", "10.0.0.7")
    with pytest.raises(outbound.OutboundRefused, match=r"10\.0\.0\.7"):
        zendesk.check_key("https://acme.zendesk.com", "token", outbound.session(), 5)


def test_a_refused_address_reads_as_a_message_on_test_connection(monkeypatch, no_sockets):
    from app.helpdesks.probe import check_helpdesk

    resolving_to(monkeypatch, "169.254.169.254")
    result = check_helpdesk(HELPDESKS["zendesk"], "https://acme.zendesk.com", "token", outbound.session())
    assert not result.ok
    assert "169.254.169.254, which is not a public address" in result.message


def _first_connect_call(helpdesk: str) -> None:
    """What each `<helpdesk> connect` asks first: its list of our webhooks or integrations."""
    from app.helpdesks import gorgias_connect, helpscout_connect, kustomer_connect, zendesk_connect

    session = outbound.session()
    if helpdesk == "zendesk":
        zendesk_connect.ZendeskApi("https://acme.zendesk.com", "a@b.co/token:x", session).webhooks()
    elif helpdesk == "gorgias":
        gorgias_connect.GorgiasApi("https://acme.gorgias.com", "a@b.co:x", session).integrations()
    elif helpdesk == "helpscout":
        helpscout_connect.HelpScoutWebhooks("https://api.helpscout.net", "token", session).list()
    else:
        kustomer_connect.KustomerWebhooks("https://api.kustomerapp.com", "token", session).list()


@pytest.mark.parametrize("helpdesk", ["zendesk", "gorgias", "helpscout", "kustomer"])
def test_a_connect_command_refused_an_address_says_so_as_a_connect_error(monkeypatch, no_sockets, helpdesk):
    from app.helpdesks.connect import ConnectError

    resolving_to(monkeypatch, "10.0.0.7")
    with pytest.raises(ConnectError, match=r"10\.0\.0\.7, which is not a public address"):
        _first_connect_call(helpdesk)


def test_a_session_that_checks_nothing_is_refused(no_sockets):
    with pytest.raises(outbound.OutboundRefused, match="checked session"):
        zendesk.fetch_customer("https://acme.zendesk.com", "token", "1", requests.Session(), 5)


@pytest.fixture
def desk():
    """A helpdesk API on 127.0.0.1 that says which Host it was asked for."""
    echo = Flask("desk")

    @echo.get("/v1/customers")
    def customers():
        return {"host": request.host, "data": []}

    with ServerThread(echo) as server:
        yield server


def test_the_connection_goes_to_the_checked_address_not_to_a_second_lookup(monkeypatch, desk):
    """DNS rebinding: a name that resolves to an allowed address once and elsewhere after."""
    port = urlsplit(desk.url).port
    answers = iter(["127.0.0.1"] + ["10.9.9.9"] * 10)
    asked = []

    def fake(host, port_, *args, **kwargs):
        if host == "desk.test":
            asked.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port_))]
        return real(host, port_, *args, **kwargs)

    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    connected = []
    real_connect = socket.socket.connect

    def loopback_only(self, address):
        if not ipaddress.ip_address(address[0]).is_loopback:
            pytest.fail(f"connected to {address}")
        connected.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    base = f"http://desk.test:{port}"
    response = outbound.request(outbound.session([base]), "GET", f"{base}/v1/customers", (), timeout=5)
    assert response.json()["host"] == f"desk.test:{port}"
    assert asked == ["desk.test"]
    assert connected == [("127.0.0.1", port)]


HOSTILE_ID = "../../admin?x=1#y"


LOOKUPS = [
    (name, lookup)
    for name, helpdesk in HELPDESKS.items()
    for lookup in ("fetch_customer", "fetch_conversation", "fetch_rating")
    if getattr(helpdesk, lookup) is not None
]


@pytest.mark.parametrize(("name", "lookup"), LOOKUPS)
def test_ids_stay_inside_one_path_segment(name, lookup, no_sockets):
    helpdesk = HELPDESKS[name]
    seen = []

    class Recording(requests.Session):
        def request(self, method, url, **kwargs):
            seen.append(url)
            response = requests.Response()
            response.status_code = 404
            return response

    recording = Recording()
    recording.mount("https://", outbound.CheckedAdapter(outbound.Policy()))
    base = helpdesk.api_url or "https://" + helpdesk.api_hosts[0].replace("*", "acme")
    assert getattr(helpdesk, lookup)(base, "token", HOSTILE_ID, recording, 5) is None
    (url,) = seen
    parts = urlsplit(url)
    assert (parts.query, parts.fragment) == ("", "")
    assert "/../" not in parts.path
    assert "..%2F..%2Fadmin%3Fx%3D1%23y" in parts.path
