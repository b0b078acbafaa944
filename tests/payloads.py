"""Helpers for the helpdesk tests: payloads as a helpdesk writes them, the facts read from them, its API."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

from app.facts import Kind
from sandbox.helpdesks import create_app
from sandbox.serve import ServerThread

_PLACEHOLDER = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def render(template: str, values: dict[str, str]) -> dict:
    """A body template as the helpdesk fills it in: every `{{placeholder}}` replaced, then parsed."""
    assert set(_PLACEHOLDER.findall(template)) == set(values), "every placeholder gets a value in the test"
    return json.loads(_PLACEHOLDER.sub(lambda match: values[match[1]], template))


def kinds(webhook) -> list[Kind]:
    """The kinds of a parsed webhook's facts, in order."""
    return [fact.kind for fact in webhook.facts]


@contextmanager
def helpdesk_api(helpdesk: str, customers: list[dict[str, Any]]) -> Iterator[ServerThread]:
    """The helpdesk API sandbox over real HTTP, holding `customers` as `helpdesk`'s."""
    with ServerThread(create_app()) as server:
        requests.post(
            f"{server.url}/sandbox/{helpdesk}/customers", json=customers, timeout=5
        ).raise_for_status()
        yield server
