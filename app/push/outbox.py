"""Intake's one transaction: the receipt, the customer, and one outbox row per Klaviyo write we owe."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.facts import Kind, Webhook, fact_to_dict
from app.klaviyo import mapping
from app.models import Conversation, Delivery, DeliveryStatus, Receipt, Workspace, utcnow
from app.push import consent_and_privacy
from app.push.customers import store_customer
from app.push.group_commit import GroupCommit
from app.push.workspaces import IntakeWorkspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    receipt_id: int
    delivery_ids: list[int]
    released_ids: list[int]  # deliveries that were waiting for this customer and can go now


def record(workspace: Workspace | IntakeWorkspace, webhook: Webhook) -> Recorded | None:
    """Store a webhook's receipt and deliveries in one transaction; None when it was already received."""
    if isinstance(workspace, Workspace):  # the writer must not touch this thread's session
        workspace = IntakeWorkspace.of(workspace)
    group = current_app.extensions.get("intake_group_commit")
    if group is None:
        group = current_app.extensions.setdefault(
            "intake_group_commit", GroupCommit(_record_many, _record_one_with_retries)
        )
    return group.store((workspace, webhook))


def _record_one_with_retries(item: tuple[IntakeWorkspace, Webhook]) -> Recorded | None:
    workspace, webhook = item
    for _ in range(3):
        try:
            (recorded,) = _record_many([(workspace, webhook)])
            db.session.commit()
            return recorded
        except IntegrityError:
            # another webhook stored the same new customer at the same moment: once more, it exists now
            db.session.rollback()
    raise RuntimeError(f"could not store webhook {webhook.event_id}: conflicting writes kept winning")


def _record_many(
    webhooks: list[tuple[IntakeWorkspace, Webhook]],
) -> list[Recorded | None]:
    """Webhooks' rows in the session's transaction, in order; None for each event id received already.

    Their receipts are one statement, their conversations' facts another and their deliveries a
    third, so a batch costs the database three round trips whatever its size. A resend within the
    batch is a duplicate like any other.
    """
    connection = db.session.connection()
    dialect = db.engine.dialect.name
    now = utcnow()
    # in key order, so that two processes' batches never wait on each other's rows in a cycle
    receipts = sorted(
        (
            {
                "workspace_id": workspace.id,
                "event_id": webhook.event_id,
                "event_name": webhook.event_name,
                "received_at": now,
            }
            for workspace, webhook in webhooks
        ),
        key=itemgetter("workspace_id", "event_id"),
    )
    # the first of the batch to carry an event id gets its receipt; a resend, perhaps concurrent, none
    receipt_ids = {
        (row.workspace_id, row.event_id): row.id
        for row in connection.execute(_INSERT_RECEIPT[dialect], receipts)
    }
    results: list[Recorded | None] = []
    owed: list[tuple[Recorded, dict]] = []
    conversations: dict[tuple[str, str], dict] = {}
    for workspace, webhook in webhooks:
        receipt_id = receipt_ids.pop((workspace.id, webhook.event_id), None)
        if receipt_id is None:
            results.append(None)
            continue
        recorded = Recorded(receipt_id, [], [])
        results.append(recorded)
        owed += [(recorded, row) for row in _delivery_rows(workspace, webhook, recorded, now)]
        _note_conversations(conversations, workspace.id, webhook, now)
    if conversations:
        rows = [conversations[key] for key in sorted(conversations)]
        connection.execute(_UPSERT_CONVERSATION[dialect], rows)
    if owed:
        # the same fact reached us under another event id: it is owed once
        delivery_ids = {
            (row.workspace_id, row.unique_id): row.id
            for row in connection.execute(
                _INSERT_DELIVERY[dialect],
                sorted((row for _, row in owed), key=itemgetter("workspace_id", "unique_id")),
            )
        }
        for recorded, row in owed:
            delivery_id = delivery_ids.pop((row["workspace_id"], row["unique_id"]), None)
            if delivery_id is not None:
                recorded.delivery_ids.append(delivery_id)
    return results


def _delivery_rows(
    workspace: IntakeWorkspace, webhook: Webhook, recorded: Recorded, now: datetime
) -> list[dict]:
    """The outbox rows a newly received webhook owes; its customer is stored on the way."""
    rows = []
    for fact in webhook.facts:
        if fact.kind is Kind.CUSTOMER_DELETED:
            if workspace.erase_on_delete:  # else the receipt alone records that it came
                rows.append(
                    consent_and_privacy.deletion_row(
                        workspace.id, workspace.helpdesk, fact, now, recorded.receipt_id
                    )
                )
            continue
        customer = fact.customer
        if fact.kind is Kind.CUSTOMER_UPSERTED and customer is not None:
            # each customer webhook is its own profile write; only a resend of it is a duplicate
            fact = dataclasses.replace(fact, discriminator=webhook.event_id)
            if store_customer(workspace.id, customer):
                recorded.released_ids.extend(_release_waiting(workspace.id, customer.helpdesk_id))
            if workspace.consent_rules:
                rows += consent_and_privacy.consent_rows(
                    workspace.id,
                    workspace.consent_rules,
                    workspace.consent_list_id,
                    fact,
                    workspace.phone_region,
                    now,
                    recorded.receipt_id,
                )
        tags = fact.tags or (customer.tags if customer is not None else ())
        if tags and (workspace.consent_rules or workspace.erase_tag):
            rows += consent_and_privacy.tag_rows(
                workspace.id,
                workspace.consent_rules,
                workspace.erase_tag,
                fact,
                tags,
                now,
                recorded.receipt_id,
            )
        if fact.kind is Kind.CONVERSATION_TAGGED or not workspace.sends(fact.kind.value):
            continue  # tags are signals, not a Klaviyo write; or the admin switched this kind off
        rows.append(
            {
                "workspace_id": workspace.id,
                "receipt_id": recorded.receipt_id,
                "kind": fact.kind.value,
                "status": DeliveryStatus.PENDING,
                "unique_id": mapping.unique_id(workspace.id, workspace.helpdesk, fact),
                "customer_id": fact.customer_id or (fact.customer.helpdesk_id if fact.customer else None),
                "conversation_id": fact.conversation_id,
                "email": mapping.normalize_email(fact.customer.email) if fact.customer else None,
                "fact": fact_to_dict(fact),
                "attempts": 0,
                "occurred_at": fact.occurred_at,
                "created_at": now,
                "updated_at": now,
                "next_attempt_at": now,
            }
        )
    return rows


def _note_conversations(
    found: dict[tuple[str, str], dict], workspace_id: str, webhook: Webhook, now: datetime
) -> None:
    """Keep what a webhook says of its conversations, the later fact's values winning within a batch."""
    for fact in webhook.facts:
        if fact.conversation_id is None or not (fact.subject or fact.channel or fact.link):
            continue
        key = (workspace_id, fact.conversation_id)
        row = found.setdefault(key, {"workspace_id": workspace_id, "conversation_id": fact.conversation_id})
        for name in ("subject", "channel", "link"):
            row[name] = getattr(fact, name) or row.get(name)
        row["updated_at"] = now


def _upsert_conversation(dialect: Any) -> Any:
    """INSERT a conversation's facts; on conflict, a value the webhook lacks keeps the stored one."""
    table = Conversation.__table__
    statement = dialect.insert(table)
    keep = {
        name: func.coalesce(statement.excluded[name], table.c[name])
        for name in ("subject", "channel", "link")
    }
    return statement.on_conflict_do_update(
        index_elements=["workspace_id", "conversation_id"],
        set_={**keep, "updated_at": statement.excluded.updated_at},
    )


_UPSERT_CONVERSATION = {
    dialect.__name__.rsplit(".", 1)[1]: _upsert_conversation(dialect) for dialect in (postgresql, sqlite)
}

# INSERT ... ON CONFLICT (intake and outbox dedup keys) DO NOTHING RETURNING each key's id, per dialect
_INSERT_RECEIPT = {
    dialect.__name__.rsplit(".", 1)[1]: dialect.insert(Receipt.__table__)
    .on_conflict_do_nothing(index_elements=["workspace_id", "event_id"])
    .returning(Receipt.__table__.c.id, Receipt.__table__.c.workspace_id, Receipt.__table__.c.event_id)
    for dialect in (postgresql, sqlite)
}
_INSERT_DELIVERY = {
    dialect.__name__.rsplit(".", 1)[1]: dialect.insert(Delivery.__table__)
    .on_conflict_do_nothing(index_elements=["workspace_id", "unique_id"])
    .returning(Delivery.__table__.c.id, Delivery.__table__.c.workspace_id, Delivery.__table__.c.unique_id)
    for dialect in (postgresql, sqlite)
}


def _release_waiting(workspace_id: str, customer_id: str) -> list[int]:
    waiting = db.session.scalars(
        select(Delivery).filter_by(
            workspace_id=workspace_id, customer_id=customer_id, status=DeliveryStatus.WAITING
        )
    ).all()
    for delivery in waiting:
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = utcnow()
    return [delivery.id for delivery in waiting]
