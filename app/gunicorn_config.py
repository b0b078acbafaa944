"""Gunicorn settings beyond the Procfile's flags: the app's log lines with their context, tidy metrics."""

from __future__ import annotations

import logging
import os
from typing import Any

from prometheus_client import multiprocess

from app import logs

LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s%(context)s: %(message)s"


def on_starting(server: Any) -> None:
    """Before the workers fork: the app's log lines go to stderr beside gunicorn's, INFO and up."""
    handler = logging.StreamHandler()
    logs.install(handler, LOG_FORMAT)
    app_logger = logging.getLogger("app")
    app_logger.addHandler(handler)
    app_logger.setLevel(logging.INFO)


def child_exit(server: Any, worker: Any) -> None:  # gunicorn's Arbiter and Worker
    """A worker process exited: its live gauges leave `/metrics` (its counters stay counted)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
