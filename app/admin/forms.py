"""The admin's forms; each checks its values the way the service will use them."""

from __future__ import annotations

import re

import phonenumbers
from flask import current_app
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    Field,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    URLField,
)
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # WTForms 3.3; stubs: 3.2
from wtforms.validators import (
    URL,
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import TextArea

from app import helpdesks
from app.facts import Kind
from app.helpdesks import outbound
from app.klaviyo import mapping
from app.models import DATABASE_INT_MAX
from app.privacy import rules


def required_text(field: StringField) -> str:
    """The text of a field that validated with DataRequired, which lets no empty value through."""
    if field.data is None:
        raise ValueError(f"{field.name} has no value: read it after the form validated")
    return field.data


class WholeNumberField(IntegerField):
    """An IntegerField that refuses a number past a database integer as it reads it, before
    `NumberRange` compares it: that calls math.isnan, which raises OverflowError on 400 digits."""

    def process_formdata(self, valuelist: list) -> None:
        super().process_formdata(valuelist)
        if self.data is not None and abs(self.data) > DATABASE_INT_MAX:
            self.data = None
            raise ValueError(self.gettext("Not a valid integer value."))


EVENT_KINDS = {
    Kind.CONVERSATION_CREATED: "Conversation created",
    Kind.CONVERSATION_CLOSED: "Conversation closed (done)",
    Kind.CSAT_SUBMITTED: "CSAT answer",
    Kind.CUSTOMER_UPSERTED: "Customer created or updated (profile sync)",
}
METRIC_KINDS = (Kind.CONVERSATION_CREATED, Kind.CONVERSATION_CLOSED, Kind.CSAT_SUBMITTED)
_ORIGIN = re.compile(r"^(https?)://(\*\.)?([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)(:\d{1,5})?$")
# Under these a wildcard would cover a whole public suffix (*.co.uk, *.com.au): with no public
# suffix list installed, any 2-letter country code under a label this short counts as one.
_SECOND_LEVEL_MAX_CHARS = 3


def _link_template(form: FlaskForm, field: StringField) -> None:
    try:
        mapping.check_link_template(field.data or "")
    except mapping.MappingError as error:
        raise ValidationError(str(error)) from None


def _origins(form: FlaskForm, field: StringField) -> None:
    allowed = current_app.config.get("CARD_FRAME_ALLOWED_ORIGINS", ())
    problems = [
        problem
        for origin in (field.data or "").split()
        if (problem := frame_ancestor_problem(origin, allowed)) is not None
    ]
    if problems:
        raise ValidationError(" ".join(problems))


def frame_ancestor_problem(origin: str, allowed: tuple[str, ...] = ()) -> str | None:
    """Why `origin` may not frame the card, or None: https only, a wildcard only below a domain.

    A plain http origin (the local sandbox desk) passes only when the deployment lists it in
    CARD_FRAME_ALLOWED_ORIGINS.
    """
    if origin in ("'self'", "'none'") or origin in allowed:
        return None
    match = _ORIGIN.match(origin)
    if match is None:
        return f"Not an origin: {origin}. Use e.g. https://acme.kustomerapp.com or https://*.kustomerapp.com."
    scheme, wildcard, host = match.group(1), match.group(2), match.group(3).lower()
    if scheme != "https":
        return f"{origin} is not https: only https origins may frame the card."
    labels = host.split(".")
    if wildcard and (
        len(labels) < 2
        or (len(labels) == 2 and len(labels[1]) == 2 and len(labels[0]) <= _SECOND_LEVEL_MAX_CHARS)
    ):
        return (
            f"{origin} covers every site under a public suffix: put * only before the helpdesk's "
            "own domain, as in https://*.kustomerapp.com."
        )
    return None


def _helpdesk_api_url(form: FlaskForm, field: URLField) -> None:
    helpdesk = helpdesks.HELPDESKS.get(form.helpdesk.data or "")
    if not field.data or helpdesk is None:
        return
    try:
        field.data = outbound.check_base_url(
            field.data, helpdesk.api_hosts, current_app.config["HELPDESK_ALLOWED_URLS"]
        )
    except outbound.OutboundRefused as error:
        raise ValidationError(str(error)) from None


def _region(form: FlaskForm, field: StringField) -> None:
    field.data = (field.data or "").strip().upper()
    if field.data not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationError("Use a two-letter country code, such as US, GB or DE.")


def _klaviyo_key(form: FlaskForm, field: PasswordField) -> None:
    if field.data and not field.data.startswith("pk_"):
        raise ValidationError("A Klaviyo private API key starts with pk_ (a public key will not do).")


def parse_property_map(text: str) -> tuple[dict[str, str], list[str]]:
    """The `helpdeskAttribute = klaviyo_property` lines as a mapping, and a message per bad line."""
    found: dict[str, str] = {}
    source_lines: dict[str, int] = {}
    target_lines: dict[str, int] = {}
    errors = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        source, equals, target = (part.strip() for part in line.partition("="))
        if not equals:
            errors.append(f"Line {number}: write helpdeskAttribute = klaviyo_property (there is no =).")
        elif not source:
            errors.append(f"Line {number}: name the helpdesk attribute before the =.")
        elif not target:
            errors.append(f"Line {number}: name the Klaviyo property after the =.")
        elif source in source_lines:
            errors.append(f"Line {number}: {source} is already mapped on line {source_lines[source]}.")
        elif target in target_lines:
            errors.append(f"Line {number}: line {target_lines[target]} already maps to {target}.")
        else:
            try:
                mapping.check_property_target(target)
            except mapping.MappingError as error:
                errors.append(f"Line {number}: {error}.")
                continue
            found[source] = target
            source_lines[source], target_lines[target] = number, number
    return found, errors


class PropertyMapField(Field):
    """A property mapping: one `helpdeskAttribute = klaviyo_property` a line on the page, a dict in `data`."""

    widget = TextArea()  # type: ignore[assignment]  # renders any field's _value(); typed for StringField
    data: dict[str, str]
    line_errors: tuple[str, ...] = ()

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        return "\n".join(f"{source} = {target}" for source, target in (self.data or {}).items())

    def process_formdata(self, valuelist: list[str]) -> None:
        self.data, errors = parse_property_map(valuelist[0] if valuelist else "")
        self.line_errors = tuple(errors)

    def pre_validate(self, form: FlaskForm) -> None:
        self.errors = [*self.errors, *self.line_errors]  # every bad line at once, not only the first


class ConsentRulesField(Field):
    """Consent rules: one JSON object a line on the page (README: Consent), a list in `data`."""

    widget = TextArea()  # type: ignore[assignment]  # renders any field's _value(); typed for StringField
    data: list[dict]
    line_errors: tuple[str, ...] = ()

    def _value(self) -> str:
        return self.raw_data[0] if self.raw_data else rules.rule_lines(self.data or [])

    def process_formdata(self, valuelist: list[str]) -> None:
        self.data, errors = rules.parse_rule_lines(valuelist[0] if valuelist else "")
        self.line_errors = tuple(errors)

    def pre_validate(self, form: FlaskForm) -> None:
        self.errors = [*self.errors, *self.line_errors]  # every bad line at once, not only the first


class WorkspaceForm(FlaskForm):
    """Create or edit a workspace. Keys are write-only: left empty, the stored key stays."""

    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    helpdesk = SelectField("Helpdesk", choices=[])
    klaviyo_key = PasswordField(
        "Klaviyo private API key", validators=[Optional(), Length(max=200), _klaviyo_key]
    )
    helpdesk_key = PasswordField("Helpdesk API key", validators=[Optional(), Length(max=2000)])
    clear_helpdesk_key = BooleanField("Remove the stored helpdesk API key")
    webhook_secret = PasswordField(
        "Webhook secret",
        validators=[Optional(), Length(min=16, max=500)],
        description="Only for helpdesks that make their own signing secret (Kustomer's webhook token, "
        "Zendesk, Intercom, Front): paste it here. Empty: keep the current one (the set-up guide shows it).",
    )
    csat_threshold = WholeNumberField(
        "CSAT threshold",
        validators=[InputRequired(), NumberRange(1, 5)],
        description="Ratings at or above this count as satisfied (score 1).",
    )
    bulk_threshold = WholeNumberField(
        "Backlog threshold",
        validators=[InputRequired(), NumberRange(10, 100_000)],
        description="Past this many events owed at once (after an outage, say), they go out in bulk "
        "requests of up to 1,000 instead of one by one.",
    )
    link_template = StringField(
        "Conversation link template",
        validators=[Optional(), Length(max=500), _link_template],
        description="{org_name} and {conversation_id} are filled in. Empty: the helpdesk's usual address.",
    )
    property_prefix = StringField(
        "Profile property prefix",
        validators=[Length(max=40), Regexp(r"^[A-Za-z0-9_]*$", message="Letters, digits and _ only.")],
        description="Put before every helpdesk customer attribute sent to Klaviyo. "
        "Empty on a new workspace: the helpdesk's name and _.",
    )
    property_map = PropertyMapField(
        "Property mapping",
        default=dict,
        description="Custom attributes go to Klaviyo as <prefix><name> unless mapped here. Map to "
        "external_id or an unprefixed name only when no other integration writes it.",
    )
    consent_rules = ConsentRulesField(
        "Consent rules",
        default=list,
        description='One rule a line, e.g. {"action": "unsubscribe", "channel": "email", "tag": '
        '"unsubscribe"} or {"action": "unsubscribe", "channel": "sms", "at_attribute": "smsOptOutAt"}. '
        "README, Consent.",
    )
    consent_list_id = StringField(
        "Klaviyo list for opt-ins",
        validators=[Optional(), Length(max=64)],
        description="The list a subscribe rule's customers join.",
    )
    erase_tag = StringField(
        "Erasure tag",
        validators=[Optional(), Length(max=100)],
        description="A conversation or customer carrying this tag is erased here and in Klaviyo, once. "
        "Enter the tag as the helpdesk's webhook carries it (for Kustomer, possibly the tag's id: "
        "docs/vendors/kustomer.md). Empty: no tag erases.",
    )
    erase_on_helpdesk_delete = BooleanField(
        "Erase a customer here and in Klaviyo when the helpdesk deletes them (Zendesk, Intercom and "
        "Help Scout send deletions). Off by default: a helpdesk also deletes duplicates and spam, and "
        "Klaviyo's deletion cannot be undone."
    )
    phone_region = StringField(
        "Default phone region",
        validators=[DataRequired(), _region],
        description="For phone numbers written without a country code.",
    )
    card_frame_ancestors = StringField(
        "Card frame-ancestors",
        validators=[Optional(), Length(max=500), _origins],
        description="The helpdesk's origin(s) allowed to show the card in a frame, separated by spaces. "
        "Empty: the helpdesk's own.",
    )
    subdomain = StringField(
        "Account subdomain",
        validators=[
            Optional(),
            Length(max=63),
            Regexp(
                r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$",
                message="Letters, digits and - only, as in acme.",
            ),
        ],
        description="acme in acme.zendesk.com or acme.gorgias.com: conversation links use it. Empty: read "
        "off the helpdesk API URL when that is the vendor's address; with neither, events go without a link.",
    )
    helpdesk_api_url = URLField(
        "Helpdesk API URL",
        validators=[
            Optional(),
            Length(max=300),
            URL(require_tld=False, message="A URL such as https://acme.zendesk.com"),
            _helpdesk_api_url,
        ],
        description="Only where the helpdesk's API lives at your own address (Zendesk: https://YOUR-SUBDOMAIN.zendesk.com).",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.helpdesk.choices = [
            SelectChoice(name, helpdesk.title) for name, helpdesk in helpdesks.HELPDESKS.items()
        ]


# One toggle and (for events) one metric name field per kind, added as class attributes.
for _kind, _label in EVENT_KINDS.items():
    setattr(WorkspaceForm, f"send_{_kind.value}", BooleanField(_label))
for _kind in METRIC_KINDS:
    setattr(
        WorkspaceForm,
        f"metric_{_kind.value}",
        StringField(
            f"Metric name: {EVENT_KINDS[_kind]}",
            validators=[Optional(), Length(max=128)],
        ),
    )


class ButtonForm(FlaskForm):
    """A form with nothing but its CSRF token, behind every action button."""


class RotateSecretForm(FlaskForm):
    grace_hours = SelectField(
        "Keep the old secret working for",
        choices=[
            SelectChoice("0", "no time: stop it now"),
            SelectChoice("1", "1 hour"),
            SelectChoice("24", "24 hours"),
            SelectChoice("168", "7 days"),
        ],
        default="24",
    )


class ExtraSecretForm(FlaskForm):
    """A further signing secret the helpdesk made (one per webhook), kept under a name."""

    name = StringField(
        "Name",
        validators=[
            DataRequired(),
            Length(max=40),
            Regexp(r"^[a-z0-9-]+$", message="Lowercase letters, digits and - only."),
        ],
        description="What the secret belongs to, e.g. zendesk-csat.",
    )
    secret = PasswordField("Signing secret", validators=[DataRequired(), Length(min=16, max=500)])


class RemoveSecretForm(FlaskForm):
    name = StringField(validators=[DataRequired(), Length(max=40)])


class TestEventForm(FlaskForm):
    email = EmailField("Email address", validators=[DataRequired(), Email(check_deliverability=False)])


class DeliveryFilterForm(FlaskForm):
    """The delivery log's filters: a GET form, so it carries no CSRF token."""

    class Meta:
        csrf = False

    status = SelectField("Status", choices=[], validators=[Optional()])
    kind = SelectField("Kind", choices=[], validators=[Optional()])
    email = StringField("Customer email", validators=[Optional(), Length(max=320)])
    conversation_id = StringField("Conversation id", validators=[Optional(), Length(max=255)])
    before = WholeNumberField(validators=[Optional(), NumberRange(min=1, max=DATABASE_INT_MAX)])


class BackfillForm(FlaskForm):
    """A backfill to start: an uploaded export, or Kustomer's API since a date."""

    source = RadioField(
        "History from",
        choices=[
            SelectChoice("file", "An export file (JSON Lines)"),
            SelectChoice("kustomer", "Kustomer's API"),
        ],
        default="file",
    )
    file = FileField(
        "Export file",
        description="One JSON object a line: Kustomer conversations and customers as their API "
        "returns them, or our normalized facts.",
    )
    since = DateField(
        "From",
        validators=[Optional()],
        description="Only what happened from this day (UTC). Required for Kustomer's API.",
    )
    org_name = StringField(
        "Kustomer org name",
        validators=[Optional(), Regexp(r"^[a-z0-9-]+$", message="Letters, digits and - only.")],
        description="acme in acme.kustomerapp.com: the conversation links use it.",
    )
    dry_run = BooleanField("Dry run: check everything and count what would be sent, send nothing")


class MemberForm(FlaskForm):
    """An owner adds an existing account to the workspace, or changes its role there."""

    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=320)])
    role = SelectField("Role", choices=[SelectChoice("member"), SelectChoice("owner")], default="member")
