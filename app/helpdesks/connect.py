"""What every helpdesk's connect command shares: its error, and keeping a webhook secret with a grace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


class ConnectError(Exception):
    """The helpdesk did not let us find, create or read our webhook; the message says what to do."""


def store_token(workspace: Any, token: str, grace: timedelta) -> bool:
    """Make `token` the workspace's webhook secret, the old secret verifying for `grace`;
    False when it already was."""
    if workspace.webhook_secret == token:
        return False
    workspace.previous_webhook_secret_encrypted = workspace.webhook_secret_encrypted if grace else None
    workspace.previous_secret_expires_at = datetime.now(UTC) + grace if grace else None
    workspace.webhook_secret = token
    return True
