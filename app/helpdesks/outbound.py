"""Every call to a helpdesk's API goes through here: only to the vendor's own hosts, never inward.

A workspace's helpdesk API URL is typed by an admin, and every call carries the workspace's API key;
so a URL must be https on one of the vendor's documented hosts (`Helpdesk.api_hosts`), without a
query or a fragment. The host is resolved and each address checked before a socket opens, and the
connection goes to the address that was checked (a second lookup could answer differently), while
TLS still checks the certificate of the host name. Private, loopback, link-local and other
non-public addresses are refused. Deployment configuration alone (HELPDESK_ALLOWED_URLS: the local
sandboxes) may name extra base URLs; those, exactly, may use plain http and a local address.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection as urllib3_connection

from app.helpdesks import HelpdeskAuthError

_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


class OutboundRefused(HelpdeskAuthError):
    """A helpdesk API address we will not send a key to; like a refused key, retrying will not help."""


def segment(value: str) -> str:
    """An id as one path segment: `/`, `?`, `#` and `..` cannot leave it."""
    return quote(value, safe="")


def normalized(url: str) -> str:
    return url.strip().rstrip("/")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Whether `host` is one of `patterns`: exact names, or `*.example.com` for any name under it."""
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def check_base_url(url: str, hosts: Sequence[str], allowed: Sequence[str] = ()) -> str:
    """The base URL, normalized; OutboundRefused unless it is https on `hosts` or in `allowed`."""
    base = normalized(url)
    if base in {normalized(extra) for extra in allowed}:
        return base
    _check_vendor_url(base, hosts, request_url=False)
    return base


def _check_vendor_url(url: str, hosts: Sequence[str], *, request_url: bool) -> None:
    # a request may carry a query (a page of results); a base URL may not, or ids would land in it
    refused = "#\\" if request_url else "?#\\"
    if any(char in url for char in refused) or any(ord(char) <= 0x20 for char in url):
        raise OutboundRefused(f"{url!r}: a helpdesk API URL has no query, fragment, backslash or space")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise OutboundRefused(f"{url!r} is not a URL") from None
    if parts.scheme != "https":
        raise OutboundRefused(f"{url!r}: a helpdesk API URL must start with https://")
    if parts.username is not None or parts.password is not None or parts.port not in (None, 443):
        raise OutboundRefused(f"{url!r}: a helpdesk API URL has no user name, password or port")
    host = (parts.hostname or "").lower()
    if not _HOST_NAME.match(host) or not host_allowed(host, hosts):
        where = ", ".join(hosts) or "no address: this helpdesk has no API we call"
        raise OutboundRefused(f"{url!r}: the helpdesk's API lives at {where}")
    if not request_url and parts.path not in ("", "/"):
        raise OutboundRefused(f"{url!r}: give only the address, such as https://{host}")


def check_request_url(url: str, hosts: Sequence[str], allowed: Sequence[str]) -> None:
    """OutboundRefused unless `url` is under an allowed base URL, or https on `hosts`."""
    for extra in allowed:
        base = normalized(extra)
        if (url == base or url.startswith((base + "/", base + "?"))) and "#" not in url:
            return
    _check_vendor_url(url, hosts, request_url=True)


@dataclass(frozen=True)
class Policy:
    """The deployment's extra helpdesk base URLs (the local sandboxes); everything else is public."""

    allowed: tuple[str, ...] = ()

    def may_reach_local(self, scheme: str, host: str, port: int | None) -> bool:
        return (scheme, host.lower(), port) in {_origin(normalized(url)) for url in self.allowed}

    def addresses(self, scheme: str, host: str, port: int) -> list[str]:
        """The addresses `host` resolves to, each checked; OutboundRefused when any is not public."""
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise OutboundRefused(f"{host} does not resolve: {error}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        if not self.may_reach_local(scheme, host, port):
            for address in addresses:
                if not _public(address):
                    raise OutboundRefused(
                        f"{host} resolves to {address}, which is not a public address; only "
                        "HELPDESK_ALLOWED_URLS may name a local one"
                    )
        if not addresses:
            raise OutboundRefused(f"{host} does not resolve")
        return addresses


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _checked_socket(connection: HTTPConnection, scheme: str, policy: Policy) -> socket.socket:
    """A socket to an address of `connection.host` that the policy allows, tried in order."""
    failure: OSError | None = None
    for address in policy.addresses(scheme, connection.host, connection.port):
        try:
            return urllib3_connection.create_connection(
                (address, connection.port),
                connection.timeout,
                source_address=connection.source_address,
                socket_options=connection.socket_options,
            )
        except OSError as error:
            failure = error
    raise NewConnectionError(connection, f"Failed to establish a new connection: {failure}")


class _CheckedHTTPConnection(HTTPConnection):
    def __init__(self, *args: Any, policy: Policy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._policy = policy

    def _new_conn(self) -> socket.socket:
        return _checked_socket(self, "http", self._policy)


class _CheckedHTTPSConnection(HTTPSConnection):
    def __init__(self, *args: Any, policy: Policy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._policy = policy

    def _new_conn(self) -> socket.socket:
        return _checked_socket(self, "https", self._policy)


class CheckedAdapter(HTTPAdapter):
    """Connections that resolve, check and connect to the checked address; keep-alive as usual."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": partial(self._pool, HTTPConnectionPool, _CheckedHTTPConnection),
            "https": partial(self._pool, HTTPSConnectionPool, _CheckedHTTPSConnection),
        }

    def _pool(self, pool_class: type, connection_class: type, *args: Any, **kwargs: Any) -> Any:
        pool = pool_class(*args, **kwargs)
        pool.ConnectionCls = partial(connection_class, policy=self.policy)
        return pool

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        raise OutboundRefused("helpdesk API calls do not go through a proxy")


def session(allowed: Sequence[str] = ()) -> requests.Session:
    """A session for helpdesk API calls: checked connections, no proxies from the environment."""
    checked = requests.Session()
    checked.trust_env = False
    adapter = CheckedAdapter(Policy(tuple(normalized(url) for url in allowed)))
    checked.mount("https://", adapter)
    checked.mount("http://", adapter)
    return checked


def request(
    http: requests.Session, method: str, url: str, hosts: Sequence[str], **kwargs: Any
) -> requests.Response:
    """`method url` through a checked session, if `url` is on `hosts` or the deployment's allowed URLs.

    OutboundRefused before any socket opens otherwise; redirects are not followed (one could point
    anywhere, and would take the key along).
    """
    try:
        adapter = http.get_adapter(url)
    except requests.exceptions.InvalidSchema:
        raise OutboundRefused(f"{url!r}: a helpdesk API URL must start with https://") from None
    if not isinstance(adapter, CheckedAdapter):
        raise OutboundRefused("helpdesk API calls need a checked session (app.helpdesks.outbound.session)")
    check_request_url(url, hosts, adapter.policy.allowed)
    return http.request(method, url, allow_redirects=False, **kwargs)
