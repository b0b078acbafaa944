"""The Zendesk app (ZAF v2) that shows the card in the ticket sidebar, and the check of Zendesk's signed JWT.

The app is a package per workspace (manifest.json, translations, logos) whose ticket-sidebar location is
our page; with `signedUrls` Zendesk POSTs that page a JWT in the `token` form field, signed RS256 with
the app's own key pair, naming the installation as audience. Sources: docs/vendors/zendesk.md, "Sidebar app".
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from typing import Any

import jwt

# "Zendesk signs the ZAF JWT with an RSA digital signature known as RS256"
# (developer.zendesk.com/documentation/apps/build-an-app/building-a-server-side-app/part-5-secure-the-app)
ALGORITHMS = ["RS256"]
TOKEN_MAX_CHARS = 8192  # a JWT with a few claims is well under 2 KiB; anything this long is not Zendesk's
CLOCK_LEEWAY_SECONDS = 30  # Zendesk's clock and ours may differ a little; an expired JWT stays refused
FRAMEWORK_VERSION = "2.0"
LOGO_SIZES = {"assets/logo.png": 128, "assets/logo-small.png": 64}  # the manifest reference's logo sizes


class TokenRefused(ValueError):
    """Zendesk's JWT is missing, forged, expired or meant for another installation."""


def audience(account_url: str, installation_id: str) -> str:
    """The `aud` claim Zendesk signs for one installation of the app on one Zendesk account."""
    return f"{account_url.rstrip('/')}/api/v2/apps/installations/{installation_id}.json"


def verify(token: str, public_key_pem: str, expected_audience: str) -> dict[str, Any]:
    """The JWT's claims when the app's key signed it (RS256) for this installation and it has not expired."""
    if not public_key_pem.strip() or not expected_audience.strip():
        raise TokenRefused("The Zendesk app's public key and installation are not set up for this workspace.")
    if not token or len(token) > TOKEN_MAX_CHARS:
        raise TokenRefused("Open the card from the Zendesk app: the request carries no Zendesk token.")
    try:
        return jwt.decode(
            token,
            public_key_pem,
            algorithms=ALGORITHMS,
            audience=expected_audience,
            leeway=CLOCK_LEEWAY_SECONDS,
            options={"require": ["exp", "aud"]},
        )
    except jwt.ExpiredSignatureError as error:
        raise TokenRefused("The Zendesk token has expired: reload the app in Zendesk.") from error
    except (jwt.PyJWTError, ValueError) as error:
        raise TokenRefused("The Zendesk token is not valid for this workspace's app.") from error


def manifest(name: str, author_email: str, sidebar_url: str) -> dict[str, Any]:
    """manifest.json: one ticket-sidebar location served by us, its first request signed by Zendesk."""
    return {
        "name": name,
        "author": {
            "name": "helpdesk-klaviyo",
            "email": author_email,
            "url": sidebar_url.split("/insight/")[0],
        },
        "defaultLocale": "en",
        "private": True,
        "location": {"support": {"ticket_sidebar": {"url": sidebar_url, "flexible": True}}},
        "version": "1.0.0",
        "frameworkVersion": FRAMEWORK_VERSION,
        # the iframe request carries a JWT the server checks ("Enabling the ZAF JWT", part 5 above)
        "signedUrls": True,
        # no settings: the workspace is in the URL and the JWT proves the request is Zendesk's
        "parameters": [],
    }


def translations(name: str) -> dict[str, Any]:
    """translations/en.json: the app's name and descriptions as Zendesk lists them."""
    return {
        "app": {
            "name": name,
            "short_description": "The ticket requester's Klaviyo profile, lists, segments and campaigns.",
            "long_description": "Shows the Klaviyo profile of the ticket's requester in the ticket sidebar.",
            "installation_instructions": "Install, then enter the app's public key and installation id "
            "on the helpdesk-klaviyo workspace page.",
        }
    }


def _png(size: int) -> bytes:
    """A square PNG in Klaviyo-ish dark green: the package's logo, made here so no binary is committed."""
    row = b"\x00" + bytes((0x23, 0x2E, 0x26)) * size  # filter byte, then RGB pixels

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def package(name: str, author_email: str, sidebar_url: str) -> bytes:
    """The app as the zip Zendesk's "Upload private app" takes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest(name, author_email, sidebar_url), indent=2))
        archive.writestr("translations/en.json", json.dumps(translations(name), indent=2))
        for path, size in LOGO_SIZES.items():
            archive.writestr(path, _png(size))
    return buffer.getvalue()
