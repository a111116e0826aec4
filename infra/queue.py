"""The Celery app as both sides see it. The web side only sends tasks by name; the worker registers them.

Embedded mode runs Celery on kombu's filesystem transport (messages are files under data_dir/broker),
so `segue run` needs no broker server and the worker runs exactly the same task code as in production.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

from infra.config import Settings, get_settings

# filesystem:// (embedded mode) is kombu's transport with atomic message writes (infra/fsqueue.py).
TRANSPORT_ALIASES["filesystem"] = "infra.fsqueue:Transport"

RENDER_BATCH_TASK = "segue.render_batch"
#: Place a render's frames with a probe pass (perceptual and adaptive spacing), then queue its batches.
PLAN_RENDER_TASK = "segue.plan_render"
#: Encode a finished render into a file (video, animation, zip, contact sheet); same queue as renders.
EXPORT_TASK = "segue.export_render"
#: Suggest intermediate prompts for a transition and rank them with probes (worker/suggestions.py).
SUGGEST_TASK = "segue.suggest_prompts"
#: Search MoCE's switch step of a keyframe by probe renders (worker/moce.py).
MOCE_SEARCH_TASK = "segue.search_switch_step"
#: One step of an autopilot run or a "Fix" request: find, probe, apply, re-render (worker/autofix.py).
AUTOFIX_TASK = "segue.autofix_step"
#: Read each U-Net block for a study's frames, stored as frame scores (worker/block_features.py).
STUDY_BLOCKS_TASK = "segue.read_study_blocks"


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
        # A dead worker's batch is noticed by its lease within SEGUE_LEASE_SECONDS (services/jobs.py).
        # Redis' own redelivery of an unacknowledged batch is the safety net behind it: sized from the longest
        # batch (SEGUE_BATCH_TIMEOUT_SECONDS), so a live batch is not handed out twice (a second copy would
        # find its frames leased and do nothing) and a lost one is not left for 6 h.
        config["broker_transport_options"] = {"visibility_timeout": settings.batch_timeout_seconds + 60}
    return config


def broker_error(timeout: float = 1.5) -> str | None:
    """Why the render queue cannot take work now, or None when it can (checked before creating rows)."""
    settings = get_settings()
    url = settings.broker_url
    try:
        if url.startswith("filesystem://"):
            folder = settings.broker_dir / "out"
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
            return None
        if url.startswith(("redis://", "rediss://", "unix://")):
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping()
            return None
        with celery_client().connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


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


def queue_depth() -> int:
    """How many messages wait in the render queue (not counting those a worker is executing)."""
    name = get_settings().render_queue
    with celery_client().connection_for_read() as connection:
        channel = connection.default_channel
        try:
            return int(channel.queue_declare(queue=name, passive=True).message_count)
        except Exception as exc:  # never declared (nothing was ever sent, or the broker came back empty)
            if "NOT_FOUND" in str(exc) or "404" in str(exc):
                return 0
            raise


def batch_priority(position: int) -> int:
    """Fairness between renders: a render's first batches go ahead of other renders' later ones.

    Redis serves priority 0 first (kombu's priority steps 0, 3, 6, 9): the first 2 batches of every render
    get 0, the next 4 get 3, the next 8 get 6, the rest 9. A 600-frame render therefore cannot starve an
    8-frame render started after it: the small one's batches overtake the big one's tail, and within a
    priority renders take turns in the order their batches were queued. (The embedded filesystem broker
    has no priorities: one person, first come first served.)
    """
    return 0 if position < 2 else 3 if position < 6 else 6 if position < 14 else 9


def _send(task: str, *args: Any, **options: Any) -> None:
    """Queue `task` with `args` on the render queue (every job kind runs on the render workers)."""
    celery_client().send_task(task, args=list(args), queue=get_settings().render_queue, **options)


def send_render_batch(render_id: int, indices: list[int], priority: int = 0) -> None:
    _send(RENDER_BATCH_TASK, render_id, indices, priority=priority)


def send_export(export_id: int) -> None:
    _send(EXPORT_TASK, export_id)


def send_plan_render(render_id: int) -> None:
    _send(PLAN_RENDER_TASK, render_id)


def send_suggestions(suggestion_id: int) -> None:
    _send(SUGGEST_TASK, suggestion_id)


def send_moce_search(search_id: int) -> None:
    _send(MOCE_SEARCH_TASK, search_id)


def send_autofix(autofix_id: int) -> None:
    _send(AUTOFIX_TASK, autofix_id)


def send_study_blocks(job_id: int) -> None:
    _send(STUDY_BLOCKS_TASK, job_id)
