"""A workspace's consent rules checked: what each may hold, and the reason a bad one is refused."""

from __future__ import annotations

import json
from typing import Any

RULE_KEYS = {"action", "channel", "at_attribute", "attribute", "tag"}


class RuleError(ValueError):
    """A consent rule is not one the service can follow; the message says why."""


def check_rule(rule: Any) -> dict[str, Any]:
    """One consent rule, as given; RuleError saying what is wrong with it."""
    if not isinstance(rule, dict) or set(rule) - RULE_KEYS:
        raise RuleError(f"an object with only {', '.join(sorted(RULE_KEYS))}")
    if rule.get("action") not in ("subscribe", "unsubscribe"):
        raise RuleError("action must be subscribe or unsubscribe")
    if rule.get("channel") not in ("email", "sms"):
        raise RuleError("channel must be email or sms")
    if "tag" in rule:
        if not isinstance(rule["tag"], str) or not rule["tag"].strip():
            raise RuleError("tag names the conversation or customer tag")
        if rule["action"] != "unsubscribe":
            # a tag has no time: it cannot record the explicit, dated consent a subscription needs
            raise RuleError("a tag rule can only unsubscribe")
        if set(rule) & {"at_attribute", "attribute"}:
            raise RuleError("a tag rule names no attribute")
        return rule
    if not isinstance(rule.get("at_attribute"), str) or not rule["at_attribute"]:
        raise RuleError("at_attribute names the attribute with the time asked (or give a tag)")
    if rule["action"] == "subscribe" and not (isinstance(rule.get("attribute"), str) and rule["attribute"]):
        raise RuleError("a subscribe rule names its opt-in flag in attribute")
    return rule


def parse_rules(text: str) -> list[dict[str, Any]]:
    """The consent rules in `text`, a JSON list; RuleError naming the rule (from 0) that is wrong."""
    try:
        rules = json.loads(text)
    except ValueError as error:
        raise RuleError(f"not JSON: {error}") from None
    if not isinstance(rules, list):
        raise RuleError("must be a JSON list of rules")
    for index, rule in enumerate(rules):
        try:
            check_rule(rule)
        except RuleError as error:
            raise RuleError(f"rule {index}: {error}") from None
    return rules


def parse_rule_lines(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The good consent rules in `text`, one JSON object a line (blank lines skipped), and a
    reason for each bad line, naming it by its number."""
    rules, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rules.append(check_rule(json.loads(line)))
        except RuleError as error:
            problems.append(f"Line {number}: {error}.")
        except ValueError as error:
            problems.append(f"Line {number}: not a JSON object ({error}).")
    return rules, problems


def rule_lines(rules: list[dict[str, Any]]) -> str:
    """The rules as `parse_rule_lines` reads them."""
    return "\n".join(json.dumps(rule) for rule in rules)
