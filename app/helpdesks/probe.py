"""'Test connection' for a helpdesk: whether its API key can read customers, as the workers will need."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from app import helpdesks
from app.helpdesks import outbound


@dataclass(frozen=True)
class HelpdeskConnection:
    ok: bool
    message: str


def check_helpdesk(
    helpdesk: helpdesks.Helpdesk, base_url: str | None, api_key: str | None, session: requests.Session
) -> HelpdeskConnection:
    """Whether the helpdesk API key can read customers, as the workers will need it to."""
    if not api_key:
        return HelpdeskConnection(
            False,
            f"No {helpdesk.title} API key is set: customers known only by id cannot be looked up.",
        )
    if helpdesk.check_key is None or not base_url:
        return HelpdeskConnection(False, f"{helpdesk.title} has no API we look customers up in.")
    try:
        helpdesk.check_key(base_url, api_key, session, 10.0)
    except outbound.OutboundRefused as error:
        return HelpdeskConnection(False, f"Not calling {helpdesk.title}'s API: {error}")
    except helpdesks.HelpdeskAuthError as error:
        return HelpdeskConnection(False, f"{helpdesk.title} refused the key: {error}")
    except helpdesks.HelpdeskUnavailable as error:
        return HelpdeskConnection(False, f"Could not reach {helpdesk.title}: {error}")
    return HelpdeskConnection(True, f"The key can read {helpdesk.title} customers.")
