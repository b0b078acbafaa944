"""Celery entry point: `celery -A tasks.worker worker` and `celery -A tasks.worker beat`."""

import logging
import os

from celery import signals
from prometheus_client import multiprocess

from app import create_app, logs
from tasks import backfills, bulk, cards, control, deliveries  # noqa: F401  (registers the tasks)

LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s]%(context)s %(message)s"

flask_app = create_app()
celery_app = flask_app.extensions["celery"]


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _log_context(logger: logging.Logger, **_: object) -> None:
    for handler in logger.handlers:
        logs.install(handler, LOG_FORMAT)


@signals.task_prerun.connect
def _bind_task(task_id: str, **_: object) -> None:
    logs.bind_task(task_id)


@signals.task_postrun.connect
def _unbind_task(**_: object) -> None:
    logs.unbind()


@signals.worker_process_shutdown.connect
def _forget_process_gauges(pid: int, **_: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
