"""Renders: plan a transition's frames, reuse stored ones, queue the rest, and end a render exactly once."""

from __future__ import annotations

import logging
from dataclasses import asdict

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.bus import get_bus
from app.config import get_settings
from app.errors import BrokerUnavailable, FieldError, NotFound
from app.queue import send_plan_render, send_render_batch
from app.services import paths
from app.services.views import frame_done, progress, stats
from app.storage import get_store
from app.tables import Frame, Render, Transition, utcnow
from core import events
from core.params import PROBED_SPACINGS, SETTING_FIELDS, KeyframeSnapshot, RenderSnapshot
from core.registry import model_revision
from core.timeline import FramePlan, render_order
from core.timeline import frame_keys as keys_of_frames

log = logging.getLogger(__name__)


def get_render(db: Session, render_id: int) -> Render:
    render = db.get(Render, render_id)
    if render is None:
        raise NotFound("render", render_id)
    return render


def snapshot(transition: Transition) -> RenderSnapshot:
    """Everything a render needs, frozen: later edits to the transition do not reach a running render."""
    settings = get_settings()
    return RenderSnapshot(
        **{name: getattr(transition, name) for name in SETTING_FIELDS},
        keyframes=[KeyframeSnapshot.model_validate(k, from_attributes=True) for k in transition.keyframes],
        model_revision=model_revision(transition.model, settings.models_dir or settings.data_dir / "models"),
    )


def start_render(db: Session, transition: Transition) -> Render:
    """Plan every frame, reuse the ones already stored, and queue the rest in batches.

    Perceptual and adaptive spacing place the frames from a probe render: the render is saved without
    frames and a worker plans it (worker/planning.py), then queues its batches through `queue_frames`.
    """
    params = snapshot(transition)
    plans = paths.plan(params)  # a timeline that cannot be planned fails here, before anything is saved
    render = Render(
        transition_id=transition.id,
        transition_version=transition.version,
        status="queued",
        params=params.model_dump(mode="json"),
        model=params.model,
        frames_total=0,
    )
    if params.spacing not in PROBED_SPACINGS:
        return queue_frames(db, render, plans)
    db.add(render)
    db.commit()
    try:
        send_plan_render(render.id)
    except Exception as exc:  # broker down: say so instead of leaving a render queued forever
        log.exception("could not queue the planning of render %s", render.id)
        error = f"the render queue is unreachable: {exc}"
        finish_render(db, render, "failed", error=error)
        raise BrokerUnavailable(error) from exc
    get_bus().publish(progress(render))
    return render


def batches(plans: list[FramePlan], keys: list[str], pending: set[int], size: int) -> list[list[int]]:
    """Pending frame indices in batches of `size` distinct frames, coarse to fine.

    Frames with one key (holds, cut segments) go in one batch: the engine renders them once. Shared
    in-betweens come after every anchor, so their anchors' latents are usually at hand.
    """
    order = render_order(len(plans))
    order = [i for i in order if plans[i].start_step == 0] + [i for i in order if plans[i].start_step > 0]
    groups: dict[str, list[int]] = {}
    for index in order:
        if index in pending:
            groups.setdefault(keys[index], []).append(index)
    listed = list(groups.values())
    return [sum(listed[i : i + size], []) for i in range(0, len(listed), size)]


def queue_frames(db: Session, render: Render, plans: list[FramePlan]) -> Render:
    """Give a render its planned frames, reuse the ones already stored and queue the rest."""
    params = RenderSnapshot.model_validate(render.params)
    frame_keys = keys_of_frames(params.pixels(), plans, params.model_revision)

    store = get_store()
    stored = set(
        db.scalars(select(Frame.key).where(Frame.key.in_(set(frame_keys)), Frame.status == "done").distinct())
    )
    reusable = {key for key in stored if store.exists(key)}

    render.frames_total = len(plans)
    now = utcnow()
    for plan, key in zip(plans, frame_keys, strict=True):
        reused = key in reusable
        render.frames.append(
            Frame(
                **asdict(plan),
                key=key,
                status="done" if reused else "pending",
                reused=reused,
                seconds=0.0 if reused else None,
                finished_at=now if reused else None,
            )
        )
    render.frames_reused = sum(1 for f in render.frames if f.reused)
    db.add(render)
    db.commit()

    bus = get_bus()
    for frame in render.frames:
        if frame.reused:
            bus.publish(frame_done(frame))
    pending = {f.index for f in render.frames if not f.reused}
    if not pending:
        finish_render(db, render, "done")
        return render
    try:
        for batch in batches(plans, frame_keys, pending, params.batch_size):
            send_render_batch(render.id, batch)
    except Exception as exc:  # broker down: say so instead of leaving a render queued forever
        log.exception("could not queue render %s", render.id)
        error = f"the render queue is unreachable: {exc}"
        finish_render(db, render, "failed", error=error)
        raise BrokerUnavailable(error) from exc
    bus.publish(progress(render))
    return render


def finish_render(db: Session, render: Render, status: str, error: str | None = None) -> bool:
    """Move a render to a final status exactly once (concurrent workers race here) and announce it."""
    result = db.execute(
        update(Render)
        .where(Render.id == render.id, Render.status.in_(("queued", "running")))
        .values(status=status, error=error, finished_at=utcnow())
    )
    if status == "cancelled":
        db.execute(
            update(Frame)
            .where(Frame.render_id == render.id, Frame.status.in_(("pending", "running")))
            .values(status="cancelled")
        )
    db.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    db.refresh(render)
    extra = {"error": error} if error else {}
    get_bus().publish(events.finished(status, render.id, stats=stats(render), **extra))
    return True


def cancel_render(db: Session, render: Render) -> Render:
    if render.is_finished:
        raise FieldError(
            "status",
            f"render {render.id} is already {render.status}; only queued or running renders can be cancelled",
        )
    finish_render(db, render, "cancelled")
    db.refresh(render)
    return render
