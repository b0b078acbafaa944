"""Freshdesk's sidebar: a Freshworks app (FDK, platform 3.0) in the ticket sidebar, built per workspace
(docs/vendors/freshdesk.md, "Sidebar").

The app's page asks Freshdesk for the ticket's contact (`client.data.get("contact")`) and sends our
`klaviyoCard` request template through Freshworks's request method: Freshworks adds the card token
from a secure installation parameter, which "can only be retrieved through the Request method, as part
of HTTPS request headers", so it never reaches the agent's browser. We answer the card's HTML.
"""

from __future__ import annotations

import io
import json
import zipfile
from importlib import resources
from urllib.parse import urlsplit

from flask import Blueprint, Response, render_template, request

from app import pages
from app.card.sidebars import lookup
from app.models import Workspace

TEMPLATE_NAME = "klaviyoCard"
APP_FILES = ("app/index.html", "app/scripts/app.js", "app/styles/style.css", "app/styles/images/icon.svg")


def card(workspace_id: str) -> Response:
    """The card's body for the contact Freshdesk's app names, for the workspace's card token only."""
    try:
        workspace = lookup.workspace_for(workspace_id, "freshdesk")
        lookup.check_card_token(workspace)
        email = lookup.email_of(request.args.get("email", ""))
    except lookup.SidebarRefused as refused:
        return refused.response()
    result = lookup.card_for(workspace, email)
    body = render_template("insight/card_content.html", result=result, card=result.data)
    return pages.protect(Response(body, 200, content_type="text/html; charset=utf-8"))


def manifest() -> dict:
    """The app's manifest: one ticket-sidebar page and the one request template it may send."""
    # "platform-version", "modules" with "common" requests and "support_ticket" locations, and
    # "engines", as https://developers.freshworks.com/docs/tutorials/intermediate/bitly-built-with-modules/declaring-manifest/
    return {
        "platform-version": "3.0",
        "modules": {
            "common": {"requests": {TEMPLATE_NAME: {}}},
            "support_ticket": {
                "location": {"ticket_sidebar": {"url": "index.html", "icon": "styles/images/icon.svg"}}
            },
        },
        "engines": {"node": "18.16.1", "fdk": "9.1.0"},
    }


def iparams(public_url: str) -> dict:
    """The installation page: our host (filled in) and the workspace's card token (secure)."""
    return {
        "klaviyo_card_host": {
            "display_name": "Card server host",
            "description": ("Your helpdesk-klaviyo host, without https:// (for example hooks.example.com)."),
            "type": "text",
            "required": True,
            "default_value": urlsplit(public_url).netloc,
        },
        "card_token": {
            "display_name": "Card token",
            "description": (
                "The workspace's card token (its set-up page, or flask --app app workspace card-token)."
            ),
            "type": "text",
            "required": True,
            "secure": True,
        },
    }


def requests_json(workspace: Workspace) -> dict:
    """The one request the app may send: GET this workspace's card for an email, with the card token."""
    return {
        TEMPLATE_NAME: {
            "schema": {
                "protocol": "https",
                "method": "GET",
                "host": "<%= iparam.klaviyo_card_host %>",
                "path": f"/insight/{workspace.id}/freshdesk/card",
                "query": {"email": "<%= context.email %>"},
                "headers": {"Authorization": "Bearer <%= iparam.card_token %>"},
            }
        }
    }


def package(workspace: Workspace, public_url: str) -> bytes:
    """The app as a zip to upload to Freshdesk as a custom app: manifest, page, script, config."""
    folder = resources.files("app.card.sidebars") / "freshdesk_app"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest(), indent=2) + "\n")
        archive.writestr("config/iparams.json", json.dumps(iparams(public_url), indent=2) + "\n")
        archive.writestr("config/requests.json", json.dumps(requests_json(workspace), indent=2) + "\n")
        for name in APP_FILES:
            archive.writestr(name, (folder / name).read_bytes())
    return buffer.getvalue()


def register(bp: Blueprint) -> None:
    """Add the Freshdesk app's card endpoint to the insight blueprint."""
    bp.add_url_rule("/<workspace_id>/freshdesk/card", "freshdesk_card", card, methods=["GET"])
