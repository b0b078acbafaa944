"""Log lines carry the task id and the workspace id while they are known, and only then."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from app import logs
from tests.test_webhooks import envelope, intake_app, post


@pytest.fixture
def intake(tmp_path: Path, make_app) -> Iterator[Flask]:
    yield from intake_app(tmp_path, make_app)


def _capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logs.install(handler, "%(levelname)s%(context)s: %(message)s")
    logger = logging.getLogger("tests.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    return logger, stream


def test_a_line_names_the_bound_task_and_workspace_and_none_after_unbind():
    logger, stream = _capture()
    logs.bind_task("task-1")
    logs.bind_workspace("ws-1")
    logger.warning("sending")
    logs.unbind()
    logger.warning("idle")
    assert stream.getvalue().splitlines() == [
        "WARNING task_id=task-1 workspace_id=ws-1: sending",
        "WARNING: idle",
    ]


def test_a_webhook_request_leaves_no_workspace_behind(intake):
    logger, stream = _capture()
    assert post(intake, json.dumps(envelope(event_id="evt-log"))).status_code == 202
    logger.warning("after the request")
    assert stream.getvalue() == "WARNING: after the request\n"


def test_caplog_still_sees_the_app_lines(intake, caplog):
    with caplog.at_level(logging.WARNING):
        logging.getLogger("app.push.webhooks").warning("seen by pytest")
    assert "seen by pytest" in caplog.text
