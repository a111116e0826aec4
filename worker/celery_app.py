"""The worker's Celery app: same configuration as the web side's client, plus the task definitions.

Start one process per GPU with the solo pool (CUDA must not be initialised before a fork):
    celery -A worker.celery_app worker -P solo -Q render -c 1
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_init, worker_ready, worker_shutdown

from app.config import get_settings
from app.queue import make_celery

celery = make_celery(include=["worker.tasks"])


@worker_init.connect
def _pin_threads(**_: Any) -> None:
    """torch threads = SEGUE_WORKER_THREADS (default: this process's cores), before any model loads."""
    import torch

    torch.set_num_threads(get_settings().torch_threads)


@worker_ready.connect
def _start_pulse(sender: Any = None, **_: Any) -> None:
    """Heartbeats (GET /healthz sees the worker) and the reaper (batches of dead workers run again)."""
    import os
    import socket

    from worker import lease

    # Several workers on one machine may share Celery's node name (segue@host): the pid tells them apart.
    name = f"{getattr(sender, 'hostname', None) or socket.gethostname()} pid {os.getpid()}"
    lease.start_worker(name, get_settings().render_queue)


@worker_shutdown.connect
def _stop_pulse(**_: Any) -> None:
    from worker import lease

    lease.stop_worker()
