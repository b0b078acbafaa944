"""The helpdesks we accept webhooks from; each module turns its webhooks into normalized facts.

Adding a helpdesk is one new module exposing a `Helpdesk`, and one line in `_registry`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import requests

from app.facts import Customer, Webhook


class HelpdeskApiError(Exception):
    """A call to a helpdesk's own API did not give an answer we can use."""


class HelpdeskAuthError(HelpdeskApiError):
    """The helpdesk refused our API key (401/403)."""


class HelpdeskUnavailable(HelpdeskApiError):
    """The helpdesk's API failed or timed out; worth trying again later."""


@dataclass(frozen=True)
class ConversationFacts:
    """What a helpdesk's API says of a conversation: what completes its close and CSAT events."""

    subject: str | None = None
    channel: str | None = None
    link: str | None = None


@dataclass(frozen=True)
class Rating:
    """A satisfaction answer read from a helpdesk's API: 1-5, as the helpdesk gave it, and a comment."""

    rating: int
    raw_rating: str
    comment: str | None = None


@dataclass(frozen=True)
class SetupGuide:
    """What an admin does in the helpdesk; shown on the admin page and in the README."""

    where: str  # where the URL and the secret go
    events: tuple[str, ...]  # the events to subscribe to, or the triggers to create
    secret: str  # how the helpdesk proves itself with the secret
    # the card URL's customer parameter, with the helpdesk's placeholder, for a sidebar that frames a URL
    card_query: str = ""
    body_template: str | None = None  # for helpdesks whose webhook body the admin writes
    # where the card goes in the helpdesk's sidebar when it is an app of the helpdesk's own kind;
    # <PUBLIC_URL>, <workspace id> and <card token> are the admin's to fill (the set-up page fills them)
    sidebar: str = ""


@dataclass(frozen=True)
class Helpdesk:
    """What the webhook endpoint, the workers and the admin page need to know of one helpdesk."""

    name: str
    title: str
    parse: Callable[[dict, Mapping[str, str]], Webhook]
    verify: Callable[[bytes, Mapping[str, str], Sequence[str]], None]
    guide: SetupGuide
    # settings whose sensible default depends on the helpdesk
    defaults: Mapping[str, str] = field(default_factory=dict)
    metric_prefix: str = ""  # "Zendesk" in "Zendesk Conversation Create"; the title when empty
    # (base URL, API key, customer id, session, timeout) -> the customer; None when unknown
    fetch_customer: Callable[[str, str, str, requests.Session, float], Customer | None] | None = None
    # raises HelpdeskAuthError or HelpdeskUnavailable unless the key can read customers
    check_key: Callable[[str, str, requests.Session, float], None] | None = None
    # (base URL, API key, conversation id, session, timeout) -> its facts; None when unknown
    fetch_conversation: (
        Callable[[str, str, str, requests.Session, float], ConversationFacts | None] | None
    ) = None
    # (base URL, API key, conversation id, session, timeout) -> its latest rating; None when none yet,
    # for helpdesks whose CSAT webhook cannot carry the answer
    fetch_rating: Callable[[str, str, str, requests.Session, float], Rating | None] | None = None
    api_url: str | None = None  # the API's address when it is the same for every account
    # the only hosts its API is called on (https); "*.example.com" for any name under it
    api_hosts: tuple[str, ...] = ()
    api_key_hint: str = ""  # what to paste as the helpdesk API key
    new_secret: Callable[[], str] = field(default=lambda: secrets.token_urlsafe(32))
    # (payload, headers) -> the JSON answer to a verified set-up request (Front's `sync`), else None
    handshake: Callable[[dict, Mapping[str, str]], dict[str, str] | None] | None = None

    @property
    def event_prefix(self) -> str:
        """What metric names start with: "Zendesk" in "Zendesk Conversation Create"."""
        return self.metric_prefix or self.title

    @property
    def api_key_uses(self) -> str:
        """What the helpdesk API key is read for, as the guide says it."""
        uses = ["customer lookups"] * bool(self.fetch_customer) + ["conversation subjects"] * bool(
            self.fetch_conversation
        )
        return " and ".join(uses + ["satisfaction ratings"] * bool(self.fetch_rating))

    def guide_markdown(self) -> str:
        """The set-up guide as the README shows it (`flask helpdesks guide` prints it too)."""
        lines = [
            f"### {self.title}",
            "",
            f"- **Webhook**: {self.guide.where} URL: `<PUBLIC_URL>/webhooks/{self.name}/<workspace id>`.",
            f"- **Secret**: {self.guide.secret}",
            "- **Events**: " + ", ".join(f"`{event}`" for event in self.guide.events) + ".",
        ]
        if self.guide.sidebar:
            lines.append(f"- **Sidebar**: {self.guide.sidebar}")
        else:
            lines.append(
                "- **Card URL**: `<PUBLIC_URL>/insight/<workspace id>/card?token=<card token>"
                f"&{self.guide.card_query}`"
            )
        if self.fetch_customer is not None or self.fetch_conversation is not None:
            lines.append(f"- **API key** ({self.api_key_uses}): {self.api_key_hint}")
        if self.guide.body_template:
            lines += ["- **Body to paste**:", "", "```json", self.guide.body_template, "```"]
        return "\n".join(lines) + "\n"


def _registry() -> dict[str, Helpdesk]:
    from app.helpdesks import freshdesk, front, generic, gorgias, helpscout, intercom, kustomer, zendesk

    return {
        helpdesk.name: helpdesk
        for helpdesk in (
            kustomer.HELPDESK,
            zendesk.HELPDESK,
            helpscout.HELPDESK,
            intercom.HELPDESK,
            gorgias.HELPDESK,
            freshdesk.HELPDESK,
            front.HELPDESK,
            generic.HELPDESK,
        )
    }


HELPDESKS: dict[str, Helpdesk] = _registry()


def get(name: str) -> Helpdesk:
    """The helpdesk called `name`; KeyError for one we do not support."""
    return HELPDESKS[name]
