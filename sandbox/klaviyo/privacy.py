"""Klaviyo's data-privacy and consent endpoints, as its OpenAPI spec documents them.

Sources and what they leave open: docs/vendors/klaviyo.md ("Privacy, consent and flows").

- `POST /api/data-privacy-deletion-jobs` (request_profile_deletion): "Request a deletion for the
  profiles corresponding to one of the following identifiers: `email`, `phone_number`, or `id`. If
  multiple identifiers are provided, we will return an error. All profiles that match the provided
  identifier will be deleted." Answers 202 with no body. Klaviyo deletes asynchronously; the
  sandbox deletes at once, which is what a user sees once Klaviyo's job has run.
"""

from __future__ import annotations

from flask import Response, g

from sandbox.klaviyo import validation
from sandbox.klaviyo.api import MAX_BULK_BYTES, MAX_PROFILE_BYTES, _accepted, _body, bp
from sandbox.klaviyo.errors import invalid, not_found

_PROFILE = "/data/attributes/profile/data"


@bp.post("/data-privacy-deletion-jobs")
def request_profile_deletion() -> Response:
    document = _body(MAX_PROFILE_BYTES)
    data = document.get("data") if isinstance(document, dict) else None
    attributes = validation.resource(data, "/data", "data-privacy-deletion-job")
    profile_data = validation.member(attributes, "/data/attributes", "profile", "data")
    profile = validation.resource(profile_data, _PROFILE, "profile")
    given = {name: profile[name] for name in ("email", "phone_number") if profile.get(name) is not None}
    if profile_data.get("id") is not None:
        given["id"] = profile_data["id"]
    if len(given) != 1:
        raise invalid("Provide exactly one of email, phone_number or id.", pointer=f"{_PROFILE}/attributes")
    [(name, value)] = given.items()
    if not isinstance(value, str):
        raise invalid(f"'{name}' must be a string.", pointer=f"{_PROFILE}/attributes/{name}")
    if name != "id":
        validation.profile_attributes({name: value}, f"{_PROFILE}/attributes")
    g.account.delete_profiles(name, value)
    return _accepted()


# Consent. bulk_subscribe_profiles and bulk_unsubscribe_profiles in the spec: "If a profile cannot be
# found matching the given identifier(s), a new profile will be created and then subscribed" (and
# "... unsubscribed"); at most 1,000 profiles to subscribe and 100 to unsubscribe per call; 202, no
# body. "Profiles not in the specified list will be globally unsubscribed."
MAX_SUBSCRIBE = 1000
MAX_UNSUBSCRIBE = 100
_CHANNELS = ("email", "sms")


@bp.post("/profile-subscription-bulk-create-jobs")
def bulk_subscribe_profiles() -> Response:
    return _consent_job("profile-subscription-bulk-create-job", "SUBSCRIBED", MAX_SUBSCRIBE)


@bp.post("/profile-subscription-bulk-delete-jobs")
def bulk_unsubscribe_profiles() -> Response:
    return _consent_job("profile-subscription-bulk-delete-job", "UNSUBSCRIBED", MAX_UNSUBSCRIBE)


def _consent_job(job_type: str, consent: str, most: int) -> Response:
    document = _body(MAX_BULK_BYTES)
    data = document.get("data") if isinstance(document, dict) else None
    attributes = validation.resource(data, "/data", job_type)
    profiles = validation.member(attributes, "/data/attributes", "profiles", "data", kind=list)
    if not 0 < len(profiles) <= most:
        raise invalid(f"Provide 1 to {most} profiles.", pointer="/data/attributes/profiles/data")
    list_id = (((data.get("relationships") or {}).get("list") or {}).get("data") or {}).get("id")
    if list_id is not None and list_id not in g.account.lists:
        raise not_found(f"A list with id {list_id} does not exist.")
    changes = []
    for index, item in enumerate(profiles):
        pointer = f"/data/attributes/profiles/data/{index}"
        profile = validation.resource(item, pointer, "profile")
        subscriptions = validation.member(profile, f"{pointer}/attributes", "subscriptions")
        identity = {
            name: profile[name] for name in ("email", "phone_number") if profile.get(name) is not None
        }
        validation.profile_attributes(identity, f"{pointer}/attributes")
        for channel in subscriptions:
            given = (subscriptions[channel] or {}).get("marketing") or {}
            if channel in _CHANNELS and given.get("consent") != consent:
                raise invalid(f"'consent' must be {consent}.", pointer=f"{pointer}/attributes/subscriptions")
        needed = {"email": "email", "sms": "phone_number"}
        for channel in subscriptions:
            if channel in _CHANNELS and needed[channel] not in identity:
                raise invalid(
                    f"{needed[channel]} is required for {channel} subscriptions.",
                    pointer=f"{pointer}/attributes",
                )
        changes.append((identity, [c for c in subscriptions if c in _CHANNELS]))
    with g.account.lock:
        for identity, channels in changes:
            found, _ = g.account.upsert_profile(identity)
            for channel in channels:
                found.subscriptions[channel] = consent
            if list_id is not None:
                group = g.account.lists[list_id]
                (group.profile_ids.add if consent == "SUBSCRIBED" else group.profile_ids.discard)(found.id)
    return _accepted()
