"""Klaviyo's `filter` query syntax: `equals(email,"a@b.com")`, `any(id,["a","b"])`, `and(f1,f2)`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sandbox.klaviyo.errors import invalid

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<punct>[(),\[\]])
      | (?P<bare>[^\s(),\[\]"']+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Condition:
    """One comparison, such as `equals(email,"a@b.com")`: operator, field and value."""

    operator: str
    field: str
    value: object


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            if text[position:].strip() == "":
                break
            raise invalid(f"Invalid filter near {text[position : position + 20]!r}.", parameter="filter")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _value(kind: str, token: str) -> object:
    if kind == "string":
        return token[1:-1].replace('\\"', '"').replace("\\'", "'")
    if token in ("true", "false"):
        return token == "true"
    if token == "null":
        return None
    try:
        return datetime.fromisoformat(token.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return float(token) if "." in token else int(token)
    except ValueError:
        raise invalid(f"Invalid filter value {token!r}.", parameter="filter") from None


def parse(text: str) -> list[Condition]:
    """Parse a filter into its conditions (joined by `and`); refuse anything malformed."""
    tokens = _tokens(text)
    position = 0

    def take(expected: str | None = None) -> tuple[str, str]:
        nonlocal position
        if position >= len(tokens):
            raise invalid("Invalid filter: it ends too early.", parameter="filter")
        token = tokens[position]
        if expected is not None and token[1] != expected:
            raise invalid(f"Invalid filter: expected {expected!r}, got {token[1]!r}.", parameter="filter")
        position += 1
        return token

    def expression() -> list[Condition]:
        _, operator = take()
        take("(")
        if operator == "and":
            conditions = expression()
            while tokens[position][1] == ",":
                take(",")
                conditions += expression()
            take(")")
            return conditions
        _, field = take()
        take(",")
        if tokens[position][1] == "[":
            take("[")
            values = []
            while tokens[position][1] != "]":
                values.append(_value(*take()))
                if tokens[position][1] == ",":
                    take(",")
            take("]")
            value: object = values
        else:
            value = _value(*take())
        take(")")
        return [Condition(operator, field, value)]

    try:
        conditions = expression()
    except IndexError:
        raise invalid("Invalid filter: unbalanced parentheses.", parameter="filter") from None
    if position != len(tokens):
        raise invalid("Invalid filter: unexpected text after the expression.", parameter="filter")
    return conditions
