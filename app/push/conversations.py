"""Complete a close or CSAT event with what its conversation's create said: stored facts, else the API.

Every event of a conversation carries the same subject, channel and link. A close or rating webhook
often lacks them (Help Scout's rating names only the conversation), so the worker fills them from
the conversation facts intake stored, and, for a conversation we never heard created, from the
helpdesk's API through the workspace's key. A conversation we cannot complete still goes out with
what we have; `Completed.missing` says what was left out and why, for the delivery log.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import helpdesks
from app.extensions import db, helpdesk_session
from app.facts import Fact, Kind
from app.klaviyo import mapping
from app.models import Conversation, Workspace, utcnow

COMPLETED_KINDS = (Kind.CONVERSATION_CLOSED, Kind.CSAT_SUBMITTED)
FIELDS = ("subject", "channel")  # a link always exists: the workspace's link template makes one


@dataclass(frozen=True)
class Completed:
    fact: Fact
    missing: str | None = None  # for the delivery log: what the event went without, and why


def lacks(fact: Fact) -> bool:
    """Whether a fact is a close or rating that lacks its conversation's subject, channel or link."""
    return (
        fact.kind in COMPLETED_KINDS
        and fact.conversation_id is not None
        and not (fact.subject and fact.channel and fact.link)
    )


def stored(workspace_id: str, conversation_ids: set[str]) -> dict[str, helpdesks.ConversationFacts]:
    """The stored facts of these conversations, in one query per thousand."""
    found: dict[str, helpdesks.ConversationFacts] = {}
    ids = sorted(conversation_ids)
    for start in range(0, len(ids), 1000):
        rows = db.session.scalars(
            select(Conversation).where(
                Conversation.workspace_id == workspace_id,
                Conversation.conversation_id.in_(ids[start : start + 1000]),
            )
        )
        found |= {
            row.conversation_id: helpdesks.ConversationFacts(row.subject, row.channel, row.link)
            for row in rows
        }
    return found


def fill(fact: Fact, known: helpdesks.ConversationFacts | None) -> Fact:
    """The fact with what it lacks taken from `known`; its own values win."""
    if known is None:
        return fact
    return dataclasses.replace(
        fact,
        subject=fact.subject or known.subject,
        channel=fact.channel or known.channel,
        link=fact.link or known.link,
    )


def still_missing(fact: Fact) -> list[str]:
    return [name for name in FIELDS if not getattr(fact, name)]


def complete(workspace: Workspace, fact: Fact) -> Completed:
    """The fact completed from the stored conversation, else from the helpdesk's API (kept for next time).

    The API's failures do not hold the event back: it goes with what we have, the reason noted.
    """
    conversation_id = fact.conversation_id
    if conversation_id is None or not lacks(fact):
        return Completed(fact)
    fact = fill(fact, stored(workspace.id, {conversation_id}).get(conversation_id))
    if not still_missing(fact):
        return Completed(fact)
    helpdesk = workspace.helpdesk_info()
    api_key, base_url = workspace.helpdesk_key, workspace.helpdesk_api_url()
    reason = f"we never received its create and {helpdesk.title}'s API is not set up to tell"
    if helpdesk.fetch_conversation is not None and api_key and base_url:
        try:
            fetched = helpdesk.fetch_conversation(
                base_url, api_key, conversation_id, helpdesk_session(), 10.0
            )
        except helpdesks.HelpdeskApiError as error:
            fetched, reason = None, f"{helpdesk.title}'s API did not tell ({error})"
        else:
            reason = f"{helpdesk.title}'s API does not know the conversation"
            if fetched is not None:
                keep(workspace.id, conversation_id, fetched)
                reason = f"{helpdesk.title}'s API does not say"
        fact = fill(fact, fetched)
    missing = still_missing(fact)
    if not missing:
        return Completed(fact)
    return Completed(fact, f"Sent without the conversation's {' and '.join(missing)}: {reason}.")


def keep(workspace_id: str, conversation_id: str, facts: helpdesks.ConversationFacts) -> None:
    """Store what the API said, so the conversation's next event needs no call; stored values win."""
    row = db.session.get(Conversation, (workspace_id, conversation_id))
    if row is None:
        try:
            with db.session.begin_nested():
                db.session.add(
                    Conversation(
                        workspace_id=workspace_id,
                        conversation_id=conversation_id,
                        subject=facts.subject,
                        channel=facts.channel,
                        link=facts.link,
                        updated_at=utcnow(),
                    )
                )
            return
        except IntegrityError:  # a webhook stored the conversation meanwhile: what it said stays
            return
    row.subject, row.channel, row.link = (
        row.subject or facts.subject,
        row.channel or facts.channel,
        row.link or facts.link,
    )


def rated(workspace: Workspace, fact: Fact) -> Fact:
    """A CSAT fact with its rating, read from the helpdesk's API when the webhook cannot carry it.

    HelpdeskUnavailable while the helpdesk shows no rating yet (the worker tries again later);
    MappingError when the workspace has no key to ask with.
    """
    if fact.kind is not Kind.CSAT_SUBMITTED or fact.rating is not None or fact.conversation_id is None:
        return fact
    helpdesk = workspace.helpdesk_info()
    api_key, base_url = workspace.helpdesk_key, workspace.helpdesk_api_url()
    if helpdesk.fetch_rating is None or not api_key or not base_url:
        raise mapping.MappingError(
            f"The webhook carries no rating; set the workspace's {helpdesk.title} API key and API URL "
            f"so that the rating can be read from {helpdesk.title}'s API."
        )
    found = helpdesk.fetch_rating(base_url, api_key, fact.conversation_id, helpdesk_session(), 10.0)
    if found is None:
        raise helpdesks.HelpdeskUnavailable(
            f"{helpdesk.title} shows no satisfaction rating for {fact.conversation_id} yet"
        )
    return dataclasses.replace(
        fact, rating=found.rating, raw_rating=found.raw_rating, comment=fact.comment or found.comment
    )
