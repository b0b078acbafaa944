"""The Celery task id and the workspace id on every log line written while they are known.

The task id is bound when a task starts and the workspace id where the work learns it (a webhook, a
delivery, a bulk drain, a card refresh, a backfill slice); `unbind` forgets both when the request or
the task ends. `ContextFilter`, on a handler, puts them on each record as `task_id`, `workspace_id`
and a ready-made `context` (" task_id=... workspace_id=...", empty when neither is known).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

_task_id: ContextVar[str | None] = ContextVar("task_id", default=None)
_workspace_id: ContextVar[str | None] = ContextVar("workspace_id", default=None)


def bind_task(task_id: str | None) -> None:
    """Tag this context's log lines with a Celery task id until `unbind`."""
    _task_id.set(task_id)


def bind_workspace(workspace_id: str | None) -> None:
    """Tag this context's log lines with a workspace id until `unbind` (or the next workspace)."""
    _workspace_id.set(workspace_id)


def unbind() -> None:
    """Forget the task and the workspace: a pooled thread or process goes on to unrelated work."""
    _task_id.set(None)
    _workspace_id.set(None)


class ContextFilter(logging.Filter):
    """Adds `task_id`, `workspace_id` and `context` to every record a handler emits."""

    def filter(self, record: logging.LogRecord) -> bool:
        task_id, workspace_id = _task_id.get(), _workspace_id.get()
        record.task_id, record.workspace_id = task_id, workspace_id
        record.context = (f" task_id={task_id}" if task_id else "") + (
            f" workspace_id={workspace_id}" if workspace_id else ""
        )
        return True


def install(handler: logging.Handler, fmt: str) -> None:
    """Give a handler the context filter and a format that may name `%(context)s`."""
    if not any(isinstance(existing, ContextFilter) for existing in handler.filters):
        handler.addFilter(ContextFilter())
    handler.setFormatter(logging.Formatter(fmt))
