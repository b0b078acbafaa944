"""Helpers for writing helpdesk payloads in tests."""

from __future__ import annotations

import json
import re

_PLACEHOLDER = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def render(template: str, values: dict[str, str]) -> dict:
    """A body template as the helpdesk fills it in: every `{{placeholder}}` replaced, then parsed."""
    assert set(_PLACEHOLDER.findall(template)) == set(values), "every placeholder gets a value in the test"
    return json.loads(_PLACEHOLDER.sub(lambda match: values[match[1]], template))
