"""Celery tasks: thin wrappers that take ids, not objects, and hand over to worker.render."""

from __future__ import annotations

from app.queue import RENDER_BATCH_TASK
from worker.celery_app import celery
from worker.render import run_batch


@celery.task(name=RENDER_BATCH_TASK, acks_late=True)
def render_batch(render_id: int, indices: list[int]) -> dict[str, int]:
    return run_batch(render_id, indices)
