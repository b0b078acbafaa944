"""Celery entry point: `celery -A tasks.worker worker` and `celery -A tasks.worker beat`."""

from app import create_app
from tasks import backfills, bulk, cards, control, deliveries  # noqa: F401  (registers the tasks)

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
