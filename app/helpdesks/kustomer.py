"""Kustomer: webhook envelopes to facts, the customer lookup, and the signature check.

Envelope: `id`, `name`, `org`, `orgName`, `createdAt`, `data` (`type`, `id`, `attributes`,
`relationships`), `changes` (null on create, `{attributes: {<name>: {op, before, after}}}` on update).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import requests
from marshmallow import EXCLUDE, INCLUDE, Schema, fields, validate

from app.facts import Customer, Fact, Kind, PayloadError, Webhook, tag_list
from app.helpdesks import Helpdesk, HelpdeskAuthError, HelpdeskUnavailable, SetupGuide, outbound
from app.helpdesks.common import load, mapping, moment, required, required_mapping, required_text
from app.signing import SignatureError, verify_hex_hmac_sha256

SIGNATURE_HEADER = "X-Kustomer-Webhook-Signature"
SUBMITTED = ("rated", "commented")


class _Data(Schema):
    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True)
    id = fields.String(required=True, validate=validate.Length(min=1))
    attributes = fields.Dict(load_default=dict)
    relationships = fields.Dict(load_default=dict, allow_none=True)


class _Envelope(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True, validate=validate.Length(min=1))
    name = fields.String(required=True, validate=validate.Length(min=1))
    org = fields.String(load_default=None, allow_none=True)
    orgName = fields.String(load_default=None, allow_none=True)
    createdAt = fields.AwareDateTime(load_default=None, allow_none=True, default_timezone=UTC)
    data = fields.Nested(_Data, required=True)
    changes = fields.Dict(load_default=None, allow_none=True)


_DATA = _Data()
_ENVELOPE = _Envelope()  # made once: building a schema costs more than loading with it


def parse(payload: dict, headers: Mapping[str, str] | None = None) -> Webhook:
    """What a Kustomer webhook means; PayloadError naming the field when its shape is wrong."""
    envelope = load(_ENVELOPE, payload)
    name, data = envelope["name"], envelope["data"]
    attributes = data["attributes"]
    sent_at = envelope["createdAt"]
    facts: list[Fact] = []
    if name in ("kustomer.conversation.create", "kustomer.conversation.update"):
        base = _conversation_base(envelope, sent_at)
        if name.endswith(".create"):
            when = moment(attributes.get("createdAt"), "data.attributes.createdAt") or sent_at
            facts.append(Fact(kind=Kind.CONVERSATION_CREATED, occurred_at=_required(when), **base))
        else:
            changes = mapping(mapping(envelope["changes"], "changes").get("attributes"), "changes.attributes")
            facts += _closed(changes, attributes, base, sent_at) + _csat(changes, attributes, base, sent_at)
        # every create and update carries the conversation's whole tag list (docs/vendors/kustomer.md, Tags):
        # a tag counts while present; the consent and erasure rows it owes are keyed so it acts once
        tags = tag_list(attributes.get("tags"))
        if tags:
            when = moment(attributes.get("updatedAt"), "data.attributes.updatedAt") or sent_at
            facts.append(
                Fact.conversation_tagged(base["conversation_id"], base["customer_id"], tags, _required(when))
            )
    elif name in ("kustomer.customer.create", "kustomer.customer.update"):
        customer = customer_from_attributes(data["id"], attributes)
        facts.append(Fact.customer_upserted(customer, customer.updated_at or _required(sent_at)))
    return Webhook(event_id=envelope["id"], event_name=name, facts=facts)


def _required(when: datetime | None) -> datetime:
    return required(when, "createdAt")


def _conversation_base(envelope: dict, sent_at: datetime | None) -> dict[str, Any]:
    data = envelope["data"]
    attributes = data["attributes"]
    relationships = mapping(data.get("relationships"), "data.relationships")
    # Every conversation in Kustomer's examples names its customer; one that does not is malformed,
    # and a fact without a customer is one no Klaviyo profile can take.
    customer = required_mapping(relationships.get("customer"), "data.relationships.customer")
    customer_data = required_mapping(customer.get("data"), "data.relationships.customer.data")
    customer_id = required_text(customer_data.get("id"), "data.relationships.customer.data.id")
    channels = attributes.get("channels") or []
    subject = attributes.get("name")
    if subject is not None and not isinstance(subject, str):
        raise PayloadError("data.attributes.name: Not a valid string.")
    return {
        "conversation_id": data["id"],
        "customer_id": customer_id,
        "subject": subject,
        "channel": channels[0] if isinstance(channels, list) and channels else None,
        "org_name": envelope.get("orgName"),
    }


def _closed(changes: dict, attributes: dict, base: dict, sent_at: datetime | None) -> list[Fact]:
    status = mapping(changes.get("status"), "changes.attributes.status")
    if status.get("after") != "done":
        return []
    return [_closed_fact(attributes, base, sent_at)]


def _closed_fact(attributes: dict, base: dict, fallback: datetime | None) -> Fact:
    last_done = attributes.get("lastDone")
    when = (
        moment(attributes.get("doneAt"), "data.attributes.doneAt")
        or moment(last_done.get("createdAt") if isinstance(last_done, dict) else None, "lastDone.createdAt")
        or moment(attributes.get("updatedAt"), "data.attributes.updatedAt")
        or _required(fallback)
    )
    # A reopened and re-closed conversation has a new close time, hence a distinct fact.
    return Fact(kind=Kind.CONVERSATION_CLOSED, occurred_at=when, discriminator=when.isoformat(), **base)


def _csat(changes: dict, attributes: dict, base: dict, sent_at: datetime | None) -> list[Fact]:
    change = changes.get("satisfactionLevel") or changes.get("satisfactionLevel.status")
    if change is None:
        return []
    before = change.get("before") if isinstance(change, dict) else None
    before_status = before.get("status") if isinstance(before, dict) else before
    if before_status in SUBMITTED:
        return []  # a comment added to a rating already recorded: the survey counts once
    return _csat_facts(attributes, base, sent_at)


def _csat_facts(attributes: dict, base: dict, fallback: datetime | None) -> list[Fact]:
    """The survey answer on a conversation, when it has one."""
    level = mapping(attributes.get("satisfactionLevel"), "data.attributes.satisfactionLevel")
    if level.get("status") not in SUBMITTED:
        return []
    raw = level.get("rating")
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 1 <= raw <= 5 or raw != int(raw):
        raise PayloadError("data.attributes.satisfactionLevel.rating: must be a whole number from 1 to 5.")
    when = (
        moment(level.get("updatedAt"), "data.attributes.satisfactionLevel.updatedAt")
        or moment(level.get("createdAt"), "data.attributes.satisfactionLevel.createdAt")
        or moment(attributes.get("updatedAt"), "data.attributes.updatedAt")
        or _required(fallback)
    )
    comment = level.get("comment") or level.get("answer")
    return [
        Fact(
            kind=Kind.CSAT_SUBMITTED,
            occurred_at=when,
            discriminator=str(level.get("id") or "survey"),
            rating=int(raw),
            raw_rating=str(raw),
            comment=comment if isinstance(comment, str) and comment.strip() else None,
            **base,
        )
    ]


def facts_from_conversation(resource: dict, org_name: str | None) -> list[Fact]:
    """What a conversation's history holds, read from its current state (the API's or an export's).

    The same facts as its webhooks made, with the same discriminators, so an event already sent
    live is recognized by Klaviyo and not recorded again. Only the latest close is known.
    """
    if resource.get("type") != "conversation":
        raise PayloadError("type: must be conversation.")
    data = load(_DATA, resource)
    envelope = {"data": data, "orgName": org_name}
    attributes = data["attributes"]
    base = _conversation_base(envelope, None)
    created = _required(moment(attributes.get("createdAt"), "attributes.createdAt"))
    facts = [Fact(kind=Kind.CONVERSATION_CREATED, occurred_at=created, **base)]
    if attributes.get("status") == "done":
        facts.append(_closed_fact(attributes, base, created))
    return facts + _csat_facts(attributes, base, created)


def _first(items: Any, key: str) -> str | None:
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and isinstance(item.get(key), str) and item[key].strip():
                return item[key]
    return None


def customer_from_attributes(customer_id: str, attributes: dict) -> Customer:
    """A Kustomer customer's identifiers, names and custom attributes."""
    full_name = attributes.get("name") or attributes.get("displayName") or ""
    first, _, last = full_name.partition(" ") if isinstance(full_name, str) else ("", "", "")
    custom = attributes.get("custom")
    return Customer(
        helpdesk_id=customer_id,
        email=_first(attributes.get("emails"), "email") or attributes.get("email"),
        phone=_first(attributes.get("phones"), "phone") or attributes.get("phone"),
        first_name=attributes.get("firstName") or first or None,
        last_name=attributes.get("lastName") or last or None,
        external_id=attributes.get("externalId"),
        attributes=custom if isinstance(custom, dict) else {},
        updated_at=moment(
            attributes.get("updatedAt") or attributes.get("modifiedAt"), "data.attributes.updatedAt"
        ),
        tags=tag_list(attributes.get("tags")),
    )


def customer_from_api(document: dict) -> Customer:
    """The customer in a `GET /v1/customers/{id}` answer."""
    data = document.get("data") or {}
    return customer_from_attributes(str(data.get("id")), data.get("attributes") or {})


def _get(
    session: requests.Session, url: str, api_key: str, timeout: float, **params: str
) -> requests.Response:
    try:
        return outbound.request(
            session,
            "GET",
            url,
            API_HOSTS,
            params=params or None,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout,
        )
    except requests.RequestException as error:
        raise HelpdeskUnavailable(f"Kustomer did not answer: {type(error).__name__}") from None


def check_key(base_url: str, api_key: str, session: requests.Session, timeout: float) -> None:
    """Read one page of one customer, as cheaply as Kustomer allows, to prove the key can read customers."""
    response = _get(session, f"{base_url}/v1/customers", api_key, timeout, pageSize="1")
    if response.status_code == 401:
        raise HelpdeskAuthError("Kustomer answered 401: the API key is not valid")
    if response.status_code == 403:
        raise HelpdeskAuthError(
            "Kustomer answered 403: give the API key the org.permission.customer.read role"
        )
    if response.status_code != 200:
        raise HelpdeskUnavailable(f"Kustomer answered {response.status_code} to GET /v1/customers")


def fetch_customer(
    base_url: str, api_key: str, customer_id: str, session: requests.Session, timeout: float
) -> Customer | None:
    """The customer from Kustomer's API; None when Kustomer does not know the id."""
    response = _get(session, f"{base_url}/v1/customers/{outbound.segment(customer_id)}", api_key, timeout)
    if response.status_code == 404:
        return None
    if response.status_code in (401, 403):
        raise HelpdeskAuthError(
            f"Kustomer answered {response.status_code} to GET /v1/customers/{customer_id}"
        )
    if response.status_code != 200:
        raise HelpdeskUnavailable(
            f"Kustomer answered {response.status_code} to GET /v1/customers/{customer_id}"
        )
    try:
        return customer_from_api(response.json())
    except (ValueError, PayloadError):
        raise HelpdeskUnavailable("Kustomer's answer was not the customer JSON we expected") from None


def search_conversations(
    base_url: str,
    api_key: str,
    session: requests.Session,
    timeout: float,
    *,
    created_from: datetime,
    page: int,
    page_size: int,
) -> tuple[list[dict], bool, int | None]:
    """A page of the conversations created at or after `created_from`, oldest first; whether more
    follow; and how many pages the search holds, when Kustomer says.

    Kustomer's search reaches only the first 100 pages of a query: past that, ask again from the
    last creation time seen.
    """
    body = {
        "queryContext": "conversation",
        "and": [{"conversation_created_at": {"gte": created_from.isoformat().replace("+00:00", "Z")}}],
        "sort": [{"conversation_created_at": "asc"}],
    }
    try:
        response = outbound.request(
            session,
            "POST",
            f"{base_url}/v1/customers/search",
            API_HOSTS,
            params={"page": page, "pageSize": page_size},
            json=body,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout,
        )
    except requests.RequestException as error:
        raise HelpdeskUnavailable(f"Kustomer did not answer: {type(error).__name__}") from None
    if response.status_code in (401, 403):
        raise HelpdeskAuthError(
            f"Kustomer answered {response.status_code} to the conversation search: the API key needs "
            "the org.permission.search.create role"
        )
    if response.status_code != 200:
        raise HelpdeskUnavailable(f"Kustomer answered {response.status_code} to the conversation search")
    try:
        document = response.json()
        pages = (document.get("meta") or {}).get("totalPages")
        more = bool((document.get("links") or {}).get("next"))
        return list(document["data"]), more, pages if isinstance(pages, int) else None
    except (ValueError, KeyError, TypeError):
        raise HelpdeskUnavailable("Kustomer's search answer was not the JSON we expected") from None


def verify(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
    """Check `X-Kustomer-Webhook-Signature` (hex HMAC-SHA256 of the raw body)."""
    try:
        verify_hex_hmac_sha256(body, secrets, headers.get(SIGNATURE_HEADER))
    except SignatureError as error:
        raise SignatureError(f"{SIGNATURE_HEADER}: {error}") from None


# https://developer.kustomer.com/docs/get-started/regions-and-base-urls: "always call your org's own
# API host. https://<your-org>.api.kustomerapp.com"; regional hosts api.kustomerapp.com,
# api.prod2.kustomerapp.com, api.prod4.kustomerapp.com; "allow HTTPS to *.kustomerapp.com".
API_HOSTS = ("*.kustomerapp.com",)


HELPDESK = Helpdesk(
    name="kustomer",
    title="Kustomer",
    parse=parse,
    verify=verify,
    guide=SetupGuide(
        # Kustomer makes the signing secret: "The response includes a token. It's the HMAC key for
        # X-Kustomer-Webhook-Signature", also shown in "Settings → Platform → Outbound webhooks →
        # Edit → Header information" (docs/events/outbound-webhooks, docs/events/delivery-and-retries).
        where="Press Connect Kustomer on the workspace's page (or run `flask --app app kustomer connect "
        "<workspace id>`): with the Kustomer API key it creates the outbound webhook and keeps its token. "
        "By hand instead: in Kustomer, Settings → Platform → Outbound webhooks → add a webhook with the "
        "URL and the events below; then open it (Edit → Header information), copy Kustomer's token, and "
        "paste it into the workspace's settings as its webhook secret.",
        events=(
            "kustomer.conversation.create",
            "kustomer.conversation.update",
            "kustomer.customer.create",
            "kustomer.customer.update",
        ),
        secret=f"Kustomer makes it: each webhook is signed with the token Kustomer issued for it "
        f"({SIGNATURE_HEADER}, hex HMAC-SHA256 of the body), so the workspace's webhook secret must be "
        "that token.",
        sidebar="the app's `smartbar-card` KView (`flask --app app kustomer register-app`; README, "
        "Connecting Kustomer), which frames `<PUBLIC_URL>/insight/<workspace id>/kustomer`.",
    ),
    defaults={
        "link_template": "https://{org_name}.kustomerapp.com/app/conversations/{conversation_id}",
        "property_prefix": "kustomer_",
        "card_frame_ancestors": "https://*.kustomerapp.com",
    },
    fetch_customer=fetch_customer,
    check_key=check_key,
    api_url="https://api.kustomerapp.com",
    api_hosts=API_HOSTS,
    api_key_hint="A Kustomer API key with the org.permission.customer.read role (and, for Connect "
    "Kustomer, org.permission.outbound_webhook and org.permission.outbound_webhook.read).",
)
