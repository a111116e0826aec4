"""The Celery app as both sides see it. The web side only sends tasks by name; the worker registers them.

Embedded mode runs Celery on kombu's filesystem transport (messages are files under data_dir/broker),
so `segue run` needs no broker server and the worker runs exactly the same task code as in production.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from app.config import Settings, get_settings

RENDER_BATCH_TASK = "segue.render_batch"
#: Place a render's frames with a probe pass (perceptual and adaptive spacing), then queue its batches.
PLAN_RENDER_TASK = "segue.plan_render"
#: Encode a finished render into a file (video, animation, zip, contact sheet); same queue as renders.
EXPORT_TASK = "segue.export_render"
#: Suggest intermediate prompts for a transition and rank them with probes (worker/suggestions.py).
SUGGEST_TASK = "segue.suggest_prompts"


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        # A render batch is long work on one device: take one message at a time, ack when finished,
        # so a worker that dies mid-batch hands the batch to another (tasks are idempotent).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": settings.render_queue,
        "task_routes": {RENDER_BATCH_TASK: {"queue": settings.render_queue}},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }
    if settings.broker_url.startswith("filesystem://"):
        folder = settings.broker_dir
        for sub in ("out", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        config["broker_transport_options"] = {
            # Left unset, the exchange tables land in ./control of whatever directory the process runs in.
            "control_folder": str(folder / "control"),
            "data_folder_in": str(folder / "out"),
            "data_folder_out": str(folder / "out"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
            "polling_interval": 0.2,
        }
    else:
        # Long renders outlive Redis' default 1 h visibility timeout; don't hand them out twice.
        config["broker_transport_options"] = {"visibility_timeout": 6 * 3600}
    return config


def make_celery(settings: Settings | None = None, **kwargs: Any) -> Celery:
    s = settings or get_settings()
    app = Celery("segue", **kwargs)
    app.conf.update(celery_config(s))
    return app


_client: tuple[str, Celery] | None = None


def celery_client() -> Celery:
    """The sending side's Celery app, rebuilt if the broker URL changed (tests switch settings)."""
    global _client
    url = get_settings().broker_url
    if _client is None or _client[0] != url:
        _client = (url, make_celery())
    return _client[1]


def send_render_batch(render_id: int, indices: list[int]) -> None:
    celery_client().send_task(RENDER_BATCH_TASK, args=[render_id, indices], queue=get_settings().render_queue)


def send_export(export_id: int) -> None:
    celery_client().send_task(EXPORT_TASK, args=[export_id], queue=get_settings().render_queue)


def send_plan_render(render_id: int) -> None:
    celery_client().send_task(PLAN_RENDER_TASK, args=[render_id], queue=get_settings().render_queue)


def send_suggestions(suggestion_id: int) -> None:
    celery_client().send_task(SUGGEST_TASK, args=[suggestion_id], queue=get_settings().render_queue)
