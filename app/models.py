"""What the service stores: workspaces, intake receipts, the delivery outbox, customers and admins."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import current_app
from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    delete,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import generate_password_hash

from app import helpdesks
from app.crypto import SecretBox
from app.extensions import db
from app.facts import MappingSettings

if TYPE_CHECKING:
    # db.Model is made at runtime as a subclass of Base; a type checker sees only Base
    from app.extensions import Base as Model
else:
    Model = db.Model


DATABASE_INT_MAX = 2**31 - 1  # the largest Integer (every id) both SQLite and PostgreSQL store


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always aware UTC in Python, whatever the database keeps."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


def secret_box() -> SecretBox:
    return current_app.extensions["secret_box"]


DEFAULT_SETTINGS: dict[str, Any] = {
    "metric_names": {},
    "csat_threshold": 4,
    "link_template": "https://{org_name}.kustomerapp.com/app/conversations/{conversation_id}",
    "property_prefix": "kustomer_",
    "property_map": {},  # helpdesk attribute -> Klaviyo attribute or property, sent unprefixed
    "phone_region": "US",
    "identity_wait_seconds": 6 * 3600,
    "max_age_seconds": 24 * 3600,
    "card_cache_seconds": 600,
    "card_frame_ancestors": "https://*.kustomerapp.com",
    "card_requests_per_minute": 120,  # per credential (card token and signed URLs, each sidebar's)
    "card_address_per_minute": 60,  # per looked-up address: fifty agents may open one customer at once
    "events_enabled": {},
    "helpdesk_api_url": "",
    "bulk_threshold": 200,  # due events beyond which they go in bulk requests (backlog mode)
    "subdomain": "",  # the helpdesk account's, for conversation links; read off the API URL when empty
    # the sidebar apps' proof that a request comes from the helpdesk (app/card/sidebars/framed.py): the
    # Zendesk app's public key (PEM) and installation address its JWTs name as audience; Front's auth_secret
    "zendesk_app_public_key": "",
    "zendesk_app_audience": "",
    "front_plugin_auth_secret": "",
    "personal_data_days": 30,  # settled deliveries keep their personal data this long (retention)
    "receipt_days": 7,  # receipts (intake's duplicate check) are kept this long: past every retry window
    # helpdesk signals -> Klaviyo consent: [{"action": "subscribe"|"unsubscribe", "channel": "email"|"sms",
    # "at_attribute": customer attribute with the time asked, "attribute": opt-in flag (subscribe)},
    # or {"action": "unsubscribe", "channel": ..., "tag": a conversation or customer tag}]
    "consent_rules": [],
    "consent_list_id": "",  # the Klaviyo list opt-ins join
    "erase_tag": "",  # a conversation or customer tag that asks us to erase the customer (app.privacy)
    # erase a customer the helpdesk deletes (Zendesk, Intercom and Help Scout say so): off, since a
    # helpdesk deletes duplicates and spam too, and Klaviyo's deletion cannot be undone
    "erase_on_helpdesk_delete": False,
    "flow_presets": [],  # the flow presets installed in Klaviyo (app.flows)
}


class Workspace(Model):
    """One helpdesk connected to one Klaviyo account, with its secrets encrypted at rest."""

    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    name: Mapped[str] = mapped_column(String(200))
    helpdesk: Mapped[str] = mapped_column(String(40))
    klaviyo_key_encrypted: Mapped[str | None] = mapped_column(Text)  # None: connected with OAuth only
    helpdesk_key_encrypted: Mapped[str | None] = mapped_column(Text)
    webhook_secret_encrypted: Mapped[str] = mapped_column(Text)
    secret_header: Mapped[str | None] = mapped_column(String(100))
    card_token_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # name -> encrypted secret: more signing secrets, for vendors that make one per webhook (Zendesk)
    extra_secrets_encrypted: Mapped[dict[str, str] | None] = mapped_column(JSON, default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def klaviyo_key(self) -> str | None:
        return secret_box().decrypt(self.klaviyo_key_encrypted) if self.klaviyo_key_encrypted else None

    @klaviyo_key.setter
    def klaviyo_key(self, value: str | None) -> None:
        self.klaviyo_key_encrypted = secret_box().encrypt(value) if value else None

    @property
    def helpdesk_key(self) -> str | None:
        return secret_box().decrypt(self.helpdesk_key_encrypted) if self.helpdesk_key_encrypted else None

    @helpdesk_key.setter
    def helpdesk_key(self, value: str | None) -> None:
        self.helpdesk_key_encrypted = secret_box().encrypt(value) if value else None

    @property
    def webhook_secret(self) -> str:
        return secret_box().decrypt(self.webhook_secret_encrypted)

    @webhook_secret.setter
    def webhook_secret(self, value: str) -> None:
        self.webhook_secret_encrypted = secret_box().encrypt(value)

    def webhook_secrets(self) -> list[str]:
        """The secrets a webhook may be signed with: the current one, the previous one in its grace,
        and every named extra secret."""
        secrets_now = [self.webhook_secret]
        expires = self.previous_secret_expires_at
        if self.previous_webhook_secret_encrypted and expires and expires > utcnow():
            secrets_now.append(secret_box().decrypt(self.previous_webhook_secret_encrypted))
        return secrets_now + list(self.extra_secrets().values())

    def extra_secrets(self) -> dict[str, str]:
        """The named extra signing secrets, decrypted, by name."""
        return {
            name: secret_box().decrypt(token)
            for name, token in sorted((self.extra_secrets_encrypted or {}).items())
        }

    def set_extra_secret(self, name: str, secret: str) -> bool:
        """Store `secret` under `name` (replacing the one of that name); False when it already was."""
        if self.extra_secrets().get(name) == secret:
            return False
        # a new dict, so the change is seen (and the intake cache forgets this workspace)
        self.extra_secrets_encrypted = {
            **(self.extra_secrets_encrypted or {}),
            name: secret_box().encrypt(secret),
        }
        return True

    def remove_extra_secret(self, name: str) -> bool:
        """Stop accepting the secret called `name`; False when there was none."""
        stored = dict(self.extra_secrets_encrypted or {})
        if stored.pop(name, None) is None:
            return False
        self.extra_secrets_encrypted = stored
        return True

    def subdomain(self) -> str | None:
        """The helpdesk account's subdomain (acme in acme.zendesk.com): the admin's, else read off
        the helpdesk API URL when that is the vendor's own host; None when neither tells."""
        given = (self.settings or {}).get("subdomain")
        if given:
            return str(given)
        return subdomain_from_url(self.helpdesk_api_url(), self.setting("link_template"))

    def rotate_webhook_secret(self, grace: timedelta) -> str:
        """A new webhook secret; the old one keeps verifying for `grace` while the helpdesk is updated."""
        self.previous_webhook_secret_encrypted = self.webhook_secret_encrypted if grace else None
        self.previous_secret_expires_at = utcnow() + grace if grace else None
        self.webhook_secret = new_webhook_secret(self.helpdesk)
        return self.webhook_secret

    @property
    def card_token(self) -> str:
        """The token that opens this workspace's cards; made on first use."""
        if not self.card_token_encrypted:
            self.card_token_encrypted = secret_box().encrypt(secrets.token_urlsafe(24))
        return secret_box().decrypt(self.card_token_encrypted)

    def rotate_card_token(self) -> str:
        self.card_token_encrypted = None
        return self.card_token

    def setting(self, name: str) -> Any:
        """The admin's value, else this helpdesk's default, else the service's."""
        if name in (self.settings or {}):
            return self.settings[name]
        return self.helpdesk_info().defaults.get(name, DEFAULT_SETTINGS[name])

    def helpdesk_info(self) -> helpdesks.Helpdesk:
        return helpdesks.get(self.helpdesk)

    def helpdesk_api_url(self) -> str | None:
        """Where the helpdesk API answers: the admin's URL, else the environment's, else the usual one."""
        return (
            self.setting("helpdesk_api_url")
            or current_app.config["HELPDESK_API_URLS"].get(self.helpdesk)
            or self.helpdesk_info().api_url
        )

    def sends(self, kind: str) -> bool:
        """Whether the admin left this kind of event switched on."""
        return bool(self.setting("events_enabled").get(kind, True))

    def mapping_settings(self) -> MappingSettings:
        return MappingSettings(
            helpdesk=self.helpdesk,
            metric_prefix=self.helpdesk_info().event_prefix,
            metric_names=dict(self.setting("metric_names")),
            csat_threshold=int(self.setting("csat_threshold")),
            link_template=self.setting("link_template"),
            org_name=self.subdomain(),
            property_prefix=self.setting("property_prefix"),
            phone_region=self.setting("phone_region"),
            property_map=dict(self.setting("property_map")),
        )

    def __repr__(self) -> str:  # secrets stay out of reprs and so out of logs
        return f"<Workspace {self.id} {self.name!r} {self.helpdesk}>"


def subdomain_from_url(url: str | None, link_template: str) -> str | None:
    """`acme` from `https://acme.zendesk.com` when the link template's host is `{org_name}.zendesk.com`."""
    template_host = urlsplit(link_template).hostname or ""
    if not url or not template_host.startswith("{org_name}."):
        return None
    suffix = template_host.removeprefix("{org_name}")
    host = (urlsplit(url).hostname or "").lower()
    label = host.removesuffix(suffix) if host.endswith(suffix) else ""
    return label if label and "." not in label else None


def new_webhook_secret(helpdesk: str = "kustomer") -> str:
    """A fresh webhook secret in the form the helpdesk expects (a whsec_ key for Standard Webhooks)."""
    return helpdesks.get(helpdesk).new_secret()


class Receipt(Model):
    """One helpdesk webhook we acknowledged; (workspace, event id) is the intake dedup key."""

    __tablename__ = "receipts"
    __table_args__ = (
        UniqueConstraint("workspace_id", "event_id", name="uq_receipts_workspace_event"),
        Index("ix_receipts_workspace_received", "workspace_id", "received_at"),  # retention's pruning
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(255))
    event_name: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryStatus:
    PENDING = "pending"
    WAITING = "waiting"  # no email or phone for the customer yet
    DELIVERED = "delivered"
    FAILED = "failed"  # Klaviyo refused it, or it can never be sent; the reason is kept
    DEAD = "dead"  # transient errors past the max age; replayable
    CANCELLED = "cancelled"  # never sent: its customer was erased while it was owed

    OPEN = (PENDING, WAITING)


class Delivery(Model):
    """The outbox: one row per Klaviyo write we owe, from acknowledgement until it is settled."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("workspace_id", "unique_id", name="uq_deliveries_workspace_unique_id"),
        Index("ix_deliveries_status_next_attempt", "status", "next_attempt_at"),
        Index("ix_deliveries_workspace_customer", "workspace_id", "customer_id"),
        Index("ix_deliveries_workspace_email", "workspace_id", "email"),
        Index("ix_deliveries_workspace_created", "workspace_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    receipt_id: Mapped[int | None] = mapped_column(ForeignKey("receipts.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    unique_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(255))
    conversation_id: Mapped[str | None] = mapped_column(String(255))
    fact: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    email: Mapped[str | None] = mapped_column(String(320))  # the profile's, for the log's search
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # an admin's retry starts a new max age
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(36), index=True)  # the bulk send holding it
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    receipt: Mapped[Receipt | None] = relationship()

    def age_seconds(self) -> float:
        """How long this delivery has been owed, counted from an admin's retry if there was one."""
        return (utcnow() - (self.replayed_at or self.created_at)).total_seconds()


class Erasure(Model):
    """An erasure we carried out, kept without the address: only a keyed hash of what was named."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    identifier_kind: Mapped[str] = mapped_column(String(20))  # email, phone or customer_id
    identifier_hash: Mapped[str] = mapped_column(String(64), index=True)  # HMAC-SHA256, app.privacy
    source: Mapped[str] = mapped_column(String(40))  # command, admin, helpdesk or tag
    requested_by: Mapped[str | None] = mapped_column(String(320))  # the admin who asked, if one did
    customers_removed: Mapped[int] = mapped_column(Integer, default=0)
    deliveries_cancelled: Mapped[int] = mapped_column(Integer, default=0)
    deliveries_scrubbed: Mapped[int] = mapped_column(Integer, default=0)
    klaviyo_deliveries: Mapped[list[int]] = mapped_column(JSON, default=list)  # the deletion requests
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Customer(Model):
    """The latest we know of a helpdesk customer, from its webhooks or the helpdesk's API."""

    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("workspace_id", "helpdesk_id", name="uq_customers_workspace_helpdesk_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    helpdesk_id: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Role:
    """What a user may do in one workspace; an operator may do everything in every workspace."""

    MEMBER = "member"  # see it, its delivery log and backfills; retry, resume, send a test event
    OWNER = "owner"  # and change its settings and secrets, run backfills, invite and remove members

    ALL = (MEMBER, OWNER)

    @staticmethod
    def covers(held: str, needed: str) -> bool:
        return held == Role.OWNER or needed == Role.MEMBER


class Conversation(Model):
    """What we last heard of a conversation (subject, channel, link), to complete its later events."""

    __tablename__ = "conversations"

    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    subject: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(255))
    link: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(UserMixin, Model):
    """Someone who can sign in to /admin: an operator of the deployment, or a member of workspaces."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_operator: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    memberships: Mapped[list[Membership]] = relationship(back_populates="user", cascade="all, delete-orphan")

    def with_session(self, token: str) -> User:
        """This user as signed in by the session `token` (what Flask-Login keeps in the cookie)."""
        self._session_token = token
        return self

    def get_id(self) -> str | None:
        return getattr(self, "_session_token", None)

    def role_in(self, workspace_id: str) -> str | None:
        """The user's role in the workspace (owner for an operator); None when they may not see it."""
        if self.is_operator:
            return Role.OWNER
        return next((m.role for m in self.memberships if m.workspace_id == workspace_id), None)


class Membership(Model):
    """A user's role in one workspace."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "workspace_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20), default=Role.MEMBER)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user: Mapped[User] = relationship(back_populates="memberships")


class UserSession(Model):
    """A signed-in session: the cookie holds its token, the database only the token's SHA-256.

    Deleting the row ends the session wherever its cookie went (sign-out, password reset, removal).
    """

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie's token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @staticmethod
    def key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()


def end_sessions(user: User) -> int:
    """End every session of `user` (a password reset, a removal); how many there were."""
    result = db.session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    return int(result.rowcount)  # type: ignore[attr-defined]


class BackfillStatus:
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"  # interrupted; the same command (or Resume) goes on from the checkpoint
    COMPLETE = "complete"
    FAILED = "failed"  # stopped by something it cannot get past (a refused key); the reason is kept
    CANCELLED = "cancelled"

    UNFINISHED = (QUEUED, RUNNING, PAUSED)


class Backfill(Model):
    """One load of history into Klaviyo, with its checkpoint: where to go on from after an interruption.

    Events are sent through `events_through` (a line or conversation position) and customers'
    profiles submitted through `profiles_through`; a resumed run reads from the lower of the two
    and sends each part only past its own mark.
    """

    __tablename__ = "backfills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(20))  # "file" or "kustomer"
    source_name: Mapped[str] = mapped_column(String(255))  # the file's name, or the search
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)  # the same source resumes
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # since, org_name
    dry_run: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20), default=BackfillStatus.QUEUED)
    reason: Mapped[str | None] = mapped_column(Text)
    upload: Mapped[bytes | None] = mapped_column(db.LargeBinary, deferred=True)  # gzip, from the admin page
    total: Mapped[int | None] = mapped_column(Integer)  # lines in the file; the search's estimate
    position: Mapped[int] = mapped_column(Integer, default=0)  # read and settled through here
    events_through: Mapped[int] = mapped_column(Integer, default=0)
    events_cursor: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    profiles_through: Mapped[int] = mapped_column(Integer, default=0)
    profiles_cursor: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    events_sent: Mapped[int] = mapped_column(Integer, default=0)
    events_failed: Mapped[int] = mapped_column(Integer, default=0)
    events_skipped: Mapped[int] = mapped_column(Integer, default=0)
    profiles_sent: Mapped[int] = mapped_column(Integer, default=0)
    profiles_failed: Mapped[int] = mapped_column(Integer, default=0)
    profiles_skipped: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)  # Klaviyo calls made
    skipped_reasons: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(36))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    seconds_spent: Mapped[float] = mapped_column(db.Float, default=0.0)  # running time, for the rate

    @property
    def finished(self) -> bool:
        return self.status not in BackfillStatus.UNFINISHED

    def rate(self) -> float | None:
        """Items read per second of running time so far."""
        return self.position / self.seconds_spent if self.seconds_spent > 1 and self.position else None

    def seconds_left(self) -> float | None:
        rate = self.rate()
        if rate is None or not self.total or self.finished:
            return None
        return max(0.0, (self.total - self.position) / rate)


class BackfillProblem(Model):
    """Something a backfill skipped or Klaviyo refused, with the line or conversation it came from."""

    __tablename__ = "backfill_problems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backfill_id: Mapped[int] = mapped_column(ForeignKey("backfills.id", ondelete="CASCADE"), index=True)
    position: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))  # "skipped" or "failed"
    what: Mapped[str] = mapped_column(String(40))  # an event kind, "profile" or "line"
    conversation_id: Mapped[str | None] = mapped_column(String(255))
    customer_id: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)


class BackfillProfileJob(Model):
    """A Klaviyo bulk profile import job a backfill submitted, with the customers in it, in order.

    `refs[i]` is `[customer id, position]` of the profile at index i, which is how Klaviyo's
    import-errors (pointing at `/data/attributes/profiles/data/i`) are mapped back to the source.
    """

    __tablename__ = "backfill_profile_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backfill_id: Mapped[int] = mapped_column(ForeignKey("backfills.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    refs: Mapped[list[list[Any]]] = mapped_column(JSON)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def hash_password(password: str) -> str:
    """The stored form of an admin's password, by the app's PASSWORD_HASH_METHOD."""
    return generate_password_hash(password, current_app.config["PASSWORD_HASH_METHOD"])


class KlaviyoGrant(Model):
    """A workspace's Klaviyo OAuth grant: the app's tokens (encrypted) and the account that approved it.

    While a workspace has one, every Klaviyo call goes with its bearer token instead of the private key.
    """

    __tablename__ = "klaviyo_grants"

    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    access_token_encrypted: Mapped[str] = mapped_column(Text)
    refresh_token_encrypted: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    scopes: Mapped[str] = mapped_column(Text)
    account_id: Mapped[str] = mapped_column(String(64))
    account_name: Mapped[str | None] = mapped_column(String(255))
    connected_by: Mapped[str | None] = mapped_column(String(320))
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def access_token(self) -> str:
        return secret_box().decrypt(self.access_token_encrypted)

    @access_token.setter
    def access_token(self, value: str) -> None:
        self.access_token_encrypted = secret_box().encrypt(value)

    @property
    def refresh_token(self) -> str:
        return secret_box().decrypt(self.refresh_token_encrypted)

    @refresh_token.setter
    def refresh_token(self, value: str) -> None:
        self.refresh_token_encrypted = secret_box().encrypt(value)

    def __repr__(self) -> str:  # tokens stay out of reprs and so out of logs
        return f"<KlaviyoGrant {self.workspace_id} account {self.account_id}>"
