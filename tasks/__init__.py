"""Celery tasks: the workers that settle the outbox."""
