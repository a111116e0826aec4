"""The worker's Celery app: same configuration as the web side's client, plus the task definitions.

Start one process per GPU with the solo pool (CUDA must not be initialised before a fork):
    celery -A worker.celery_app worker -P solo -Q render -c 1
"""

from __future__ import annotations

from app.queue import make_celery

celery = make_celery(include=["worker.tasks"])
