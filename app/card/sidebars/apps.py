"""Sidebars that answer a helpdesk's own signed request or fetch: Intercom, Help Scout, Freshdesk, Gorgias."""

from __future__ import annotations

from flask import Blueprint

from app.card.sidebars import freshdesk, gorgias, helpscout, intercom

bp = Blueprint("sidebar_apps", __name__, url_prefix="/insight")
for _sidebar in (intercom, helpscout, freshdesk, gorgias):
    _sidebar.register(bp)
