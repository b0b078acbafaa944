"""The helpdesks we accept webhooks from; each module turns its webhooks into normalized facts.

Adding a helpdesk is one new module exposing a `Helpdesk`, and one line in `HELPDESKS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import requests

from app.facts import Customer, Webhook


class HelpdeskApiError(Exception):
    """A call to a helpdesk's own API did not give an answer we can use."""


class HelpdeskAuthError(HelpdeskApiError):
    """The helpdesk refused our API key (401/403)."""


class HelpdeskUnavailable(HelpdeskApiError):
    """The helpdesk's API failed or timed out; worth trying again later."""


@dataclass(frozen=True)
class Helpdesk:
    """What the webhook endpoint and the workers need to know of one helpdesk."""

    name: str
    title: str
    parse: Callable[[dict], Webhook]
    verify: Callable[[bytes, Mapping[str, str], Sequence[str]], None]
    fetch_customer: Callable[[str, str, str, requests.Session, float], Customer | None]
    # raises HelpdeskAuthError or HelpdeskUnavailable unless the key can read customers
    check_key: Callable[[str, str, requests.Session, float], None] | None = None


def _registry() -> dict[str, Helpdesk]:
    from app.helpdesks import kustomer

    return {"kustomer": kustomer.HELPDESK}


HELPDESKS: dict[str, Helpdesk] = _registry()


def get(name: str) -> Helpdesk:
    """The helpdesk called `name`; KeyError for one we do not support."""
    return HELPDESKS[name]
