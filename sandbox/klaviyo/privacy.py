"""Klaviyo's data-privacy and consent endpoints, as its OpenAPI spec documents them.

- `POST /api/data-privacy-deletion-jobs` (request_profile_deletion): "Request a deletion for the
  profiles corresponding to one of the following identifiers: `email`, `phone_number`, or `id`. If
  multiple identifiers are provided, we will return an error. All profiles that match the provided
  identifier will be deleted." Answers 202 with no body. Klaviyo deletes asynchronously; the
  sandbox deletes at once, which is what a user sees once Klaviyo's job has run.
"""

from __future__ import annotations

from flask import Response, g

from sandbox.klaviyo import validation
from sandbox.klaviyo.api import MAX_PROFILE_BYTES, _accepted, _body, bp
from sandbox.klaviyo.errors import invalid

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
