"""Plan a render whose spacing needs a probe pass (perceptual, adaptive), then queue its batches.

Held under a lease like run_batch's frames (worker/lease.py `claim_job` on the render row, which has no
frames yet): a second copy of the task (a redelivery, the reaper's requeue racing a slow worker) takes
nothing, a worker that dies lets the lease run out and the reaper queues the planning again (the render
fails after `max_attempts` takes). Only the holder adds the frames, in the transaction that ends its lease.
The probe pass itself is engine/probe.py; where the frames go is core.spacing; the frames are then
planned, keyed, reused and queued exactly as for any render (services/rendering.queue_frames).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from sqlalchemy import func, select, update

from core.params import PROBED_SPACINGS, RenderSnapshot
from core.statuses import Status
from core.timeline import frames_at, keys_of
from infra.bus import get_bus
from infra.config import get_settings
from infra.db import new_session
from infra.tables import Frame, Render, utcnow
from services import moce, noise_paths
from services.errors import FieldError
from services.jobs import PLANNING
from services.presenters import progress
from services.rendering import finish_render, queue_frames
from worker import keyframe_images, lease

log = logging.getLogger(__name__)


def _is_cancelled(render_id: int) -> bool:
    with new_session() as db:
        return db.scalar(select(Render.status).where(Render.id == render_id)) in (
            Status.CANCELLED,
            Status.FAILED,
        )


def run_plan(render_id: int) -> dict[str, Any]:
    return lease.run_job(PLANNING, render_id, f"render {render_id}: planning", _run_plan, {"planned": 0})


def _run_plan(render_id: int, token: str) -> dict[str, Any]:
    from engine.pipeline import RenderCancelled, get_engine
    from engine.probe import place

    settings = get_settings()
    with new_session() as db:
        # Queued without frames, or planning under a lease that ran out; a second copy takes nothing.
        started = func.coalesce(Render.started_at, utcnow())
        if not lease.claim_job(db, PLANNING, render_id, token, started_at=started):
            return {"planned": 0}
        render = db.get(Render, render_id)
        if render is None:
            return {"planned": 0}
        db.refresh(render)
        snapshot = render.snapshot
        if render.waiting_for is not None:
            # Waited for a switch step search: resolve it now, or wait on (released, queued) or fail
            try:
                snapshot = moce.resolve(db, render.transition, snapshot)
            except moce.SearchPending as pending:
                _wait_on(render_id, token, pending.message)
                return {"planned": 0}
            except FieldError as exc:
                if lease.hold_job(db, PLANNING, render_id, token, lease_token=None, leased_until=None):
                    finish_render(db, render, Status.FAILED, error=exc.message)
                return {"planned": 0}
            render.params = snapshot.model_dump(mode="json")
            render.waiting_for = None
            db.commit()
        get_bus().publish(progress(render))

    if snapshot.spacing not in PROBED_SPACINGS:  # it only waited for a search: no probe pass to run
        return _queue(render_id, token, noise_paths.plan(snapshot), 0)
    try:
        engine = get_engine(snapshot.model, models_dir=settings.models_dir, device=settings.worker_device)
        cancelled = partial(_is_cancelled, render_id)
        # Frames touching a keyframe image are probed through the image path, as they will be rendered.
        images = keyframe_images.probe_renderer(engine, snapshot, cancelled)
        placement = place(engine, snapshot, should_cancel=cancelled, render_plans=images)
        plans = noise_paths.plan(snapshot, times=placement.times, spacing=placement.warp)
    except RenderCancelled:
        log.info("render %s cancelled during its probe pass", render_id)
        _release(render_id, token)
        return {"planned": 0}
    except Exception as exc:
        log.exception("render %s: the probe pass failed", render_id)
        with new_session() as db:
            render = db.get(Render, render_id)
            # Only while this claim holds the planning; the lease ends in the transaction that fails it.
            if render is not None and lease.hold_job(
                db, PLANNING, render_id, token, lease_token=None, leased_until=None
            ):
                message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                finish_render(db, render, Status.FAILED, error=f"planning the spacing failed: {message}")
        return {"planned": 0}
    log.info(
        "render %s: %s spacing placed %d frames after %d probe frames (%s)",
        render_id,
        placement.spacing,
        len(plans),
        placement.probe_frames,
        placement.reason or "curve",
    )
    return _queue(render_id, token, plans, placement.probe_frames)


def _queue(render_id: int, token: str, plans: list[Any], probe_frames: int) -> dict[str, Any]:
    with new_session() as db:
        # The lease ends in the transaction that adds the frames (queue_frames commits): from then on the
        # render is no planning job, and a claimer blocked on the row finds it without a lease holder.
        if not lease.hold_job(db, PLANNING, render_id, token, lease_token=None, leased_until=None):
            db.rollback()
            log.warning("render %s: no longer ours to plan (cancelled, or taken over); dropped", render_id)
            return {"planned": 0}
        render = db.get(Render, render_id)
        if render is None or render.frames:
            db.rollback()
            return {"planned": 0}
        queue_frames(db, render, plans)
    return {"planned": len(plans), "probe_frames": probe_frames}


def _wait_on(render_id: int, token: str, reason: str) -> None:
    """Back to `queued` (no lease, so the next claim counts from 1): the search's end sends the planning."""
    with new_session() as db:
        db.execute(
            update(Render)
            .where(Render.id == render_id, Render.lease_token == token)
            .values(status=Status.QUEUED, lease_token=None, leased_until=None, waiting_for=reason),
            execution_options={"synchronize_session": False},
        )
        db.commit()


def _release(render_id: int, token: str) -> None:
    """Give up the planning lease of a cancelled render (its status stays as the canceller set it)."""
    with new_session() as db:
        db.execute(
            update(Render)
            .where(Render.id == render_id, Render.lease_token == token)
            .values(lease_token=None, leased_until=None),
            execution_options={"synchronize_session": False},
        )
        db.commit()


def frame_requests(db: Any, render_id: int, frames: list[Frame]) -> list[Any]:
    """The engine requests of a batch's frames (prompts, blend, noise, switch step and MoCE's early_a /
    early_b, engine.probe.request_of); shared in-betweens carry their anchors' requests."""
    from engine.probe import requests_for

    wanted = {i for f in frames if f.start_step for i in (f.anchor_a, f.anchor_b) if i is not None}
    anchors = (
        {
            a.index: a
            for a in db.scalars(select(Frame).where(Frame.render_id == render_id, Frame.index.in_(wanted)))
        }
        if wanted
        else {}
    )
    requests = requests_for(frames, anchors)
    render = db.get(Render, render_id)
    if render is None:
        return requests
    return with_attention(render.snapshot, frames, requests, anchors)


def with_attention(
    snapshot: RenderSnapshot, frames: list[Any], requests: list[Any], anchors: dict[int, Any]
) -> list[Any]:
    """Requests with the attention interpolation their plan gives (mode and the keyframes' frames, whose
    keys and values the frame mixes), a shared in-between's anchors too: a frame row stores neither;
    its t and the snapshot decide both."""
    from dataclasses import replace

    from engine.probe import request_of

    if snapshot.attention_interpolation == "none" and not any(
        k.attention_interpolation not in (None, "none") for k in snapshot.keyframes
    ):
        return requests
    keys = keys_of(snapshot)

    def attach(row: Any, request: Any) -> Any:
        (plan,) = frames_at(
            keys,
            [row.t],
            seed=snapshot.seed,
            noise_path=snapshot.noise_interpolation,
            attention=snapshot.attention_interpolation,
        )
        if plan.ends is None or abs(plan.local_t - row.local_t) > 1e-9:
            return request
        return replace(request, attention=plan.attention, ends=tuple(request_of(e) for e in plan.ends))

    out = []
    for frame, request in zip(frames, requests, strict=True):
        request = attach(frame, request)
        if request.start is not None:
            start = request.start
            start = replace(
                start,
                anchor_a=attach(anchors[frame.anchor_a], start.anchor_a),
                anchor_b=attach(anchors[frame.anchor_b], start.anchor_b),
            )
            request = replace(request, start=start)
        out.append(request)
    return out
