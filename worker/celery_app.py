"""The worker's Celery app: same configuration as the web side's client, plus the task definitions.

Start one process per GPU with the solo pool (CUDA must not be initialised before a fork):
    celery -A worker.celery_app worker -P solo -Q render -c 1
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_init, worker_ready, worker_shutdown

from infra.config import get_settings
from infra.queue import make_celery

celery = make_celery(include=["worker.tasks"])
#: The worker's exit status when its device or its LoRA does not exist here (sysexits' EX_CONFIG).
EXIT_NO_DEVICE = 78


@worker_init.connect
def _pin_threads(**_: Any) -> None:
    """torch threads = SEGUE_WORKER_THREADS (default: this process's cores), before any model loads; a device
    this machine lacks (SEGUE_DEVICE=cuda without a GPU) ends the worker with one line, no traceback."""
    import os
    import sys

    import torch

    from engine.pipeline import DeviceUnavailable, resolve_device

    settings = get_settings()
    torch.set_num_threads(settings.torch_threads)
    try:
        device = resolve_device(settings.worker_device)
    except DeviceUnavailable as exc:
        print(f"segue worker: {exc}", file=sys.stderr, flush=True)
        os._exit(EXIT_NO_DEVICE)  # from inside Celery's start-up: SystemExit would print its traceback
    if settings.lora and not os.path.isfile(os.path.expanduser(settings.lora)):
        print(f"segue worker: SEGUE_LORA={settings.lora} is not a file", file=sys.stderr, flush=True)
        os._exit(EXIT_NO_DEVICE)
    if device.type == "cuda":
        # TF32 matmuls on Ampere and newer: fp32 parts (VAE upcasts, schedulers) at tensor-core speed.
        torch.backends.cuda.matmul.allow_tf32 = True


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
    from worker.finishing import wait_for_finishing

    wait_for_finishing()  # the last batches are stored and announced while their leases are still kept
    lease.stop_worker()
