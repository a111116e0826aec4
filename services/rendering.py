"""Renders: plan a transition's frames, reuse stored ones, queue the rest, and end a render exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from core import events
from core.params import PROBED_SPACINGS, SETTING_FIELDS, KeyframeSnapshot, RenderSnapshot
from core.registry import model_revision
from core.statuses import Status
from core.timeline import FramePlan, render_order
from core.timeline import frame_keys as keys_of_frames
from infra.bus import get_bus
from infra.config import get_settings
from infra.queue import batch_priority, broker_error, send_autofix, send_plan_render, send_render_batch
from infra.storage import get_store
from infra.tables import Autofix, Frame, Render, Transition, utcnow
from services import moce, noise_paths, timing
from services.errors import BrokerUnavailable, FieldError, TooMany
from services.presenters import frame_done, progress, stats
from services.rows import found
from services.sending import sent_or_failed

log = logging.getLogger(__name__)

#: Plan fields a frame row does not store: attention interpolation follows from the frame's t and the
#: render's snapshot (worker/planning.with_attention); the frame key hashes it.
_PLANNED_ONLY = ("attention", "ends", "image_a", "image_b")


def get_render(db: Session, render_id: int) -> Render:
    return found(db, Render, render_id, "render")


def snapshot(transition: Transition) -> RenderSnapshot:
    """Everything a render needs, frozen: later edits to the transition do not reach a running render."""
    settings = get_settings()
    return RenderSnapshot(
        **{name: getattr(transition, name) for name in SETTING_FIELDS},
        keyframes=[KeyframeSnapshot.model_validate(k, from_attributes=True) for k in transition.keyframes],
        model_revision=model_revision(transition.model, settings.models_folder),
        **timing.audio_inputs(transition),  # the soundtrack, and its onset energy for spacing "audio"
    )


def start_render(
    db: Session, transition: Transition, link_id: int | None = None, probed: frozenset[str] = frozenset()
) -> Render:
    """Plan every frame, reuse the ones already stored, and queue the rest in batches.

    `probed`: frame keys a worker rendered at full settings and stored (the autopilot's probes of the fix
    it applies): reused like rendered frames when the store has them.

    Perceptual and adaptive spacing place the frames from a probe render: the render is saved without
    frames and a worker plans it (worker/planning.py), then queues its batches through `queue_frames`.
    `link_id`: the share link it is started through, which has its own quota of renders at once.
    """
    params = snapshot(transition)
    # MoCE: an "auto" switch step becomes its search's chosen step; a failed search is a 422 naming the
    # keyframe; a search not done yet (queued if it was never asked for) makes the render wait for it
    try:
        params = moce.resolve(db, transition, params)
    except moce.SearchPending as pending:
        # an unplannable timeline fails now, not after the search
        noise_paths.plan(moce.placeholder_steps(params))
        return _wait_for_search(db, transition, params, link_id, pending.message)
    plans = noise_paths.plan(params)  # a timeline that cannot be planned fails here, before anything is saved
    check_quotas(db, transition.id, params, len(plans), link_id)
    problem = broker_error()  # the queue is away: 503 before any row is written, nothing is left queued
    if problem:
        raise BrokerUnavailable(f"the render queue is unreachable, so the render was not started: {problem}")
    render = _queued_render(transition, params, link_id)
    if params.spacing not in PROBED_SPACINGS:
        return queue_frames(db, render, plans, probed)
    db.add(render)
    db.commit()
    with sent_or_failed(f"the planning of render {render.id}", failing_render(db, render)):
        send_plan_render(render.id)
    get_bus().publish(progress(render))
    return render


def _queued_render(
    transition: Transition, params: RenderSnapshot, link_id: int | None, waiting_for: str | None = None
) -> Render:
    """A new render of the transition as it stands, queued, its frames not planned yet."""
    return Render(
        transition_id=transition.id,
        transition_version=transition.version,
        status=Status.QUEUED,
        params=params.model_dump(mode="json"),
        model=params.model,
        frames_total=0,
        link_id=link_id,
        waiting_for=waiting_for,
    )


def _wait_for_search(
    db: Session, transition: Transition, params: RenderSnapshot, link_id: int | None, reason: str
) -> Render:
    """A render saved without frames, `queued` with the reason it waits; when the switch step search ends,
    `plan_waiting` hands it to the planning job (worker/planning.py), which resolves the step and queues
    the frames, or fails the render with the search's error."""
    check_quotas(db, transition.id, params, params.frames, link_id)
    render = _queued_render(transition, params, link_id, waiting_for=reason)
    db.add(render)
    db.commit()
    try:
        get_bus().publish(progress(render))
    except Exception:  # saved all the same; the page shows it from the database
        log.warning("render %s: could not announce that it waits", render.id)
    return render


def plan_waiting(db: Session, transition_id: int) -> int:
    """Send the planning of this transition's renders that wait for a switch step search (one ended)."""
    waiting = db.scalars(
        select(Render.id).where(
            Render.transition_id == transition_id,
            Render.status == Status.QUEUED,
            Render.waiting_for.is_not(None),
            ~Render.frames.any(),
        )
    ).all()
    for render_id in waiting:
        try:
            send_plan_render(render_id)
        except Exception as exc:  # the reaper sends it again (a queued render without frames is a job)
            log.warning("render %s: could not queue its planning (%s)", render_id, exc)
    return len(waiting)


def check_quotas(
    db: Session, transition_id: int, params: RenderSnapshot, frames: int, link_id: int | None = None
) -> None:
    """Refuse work beyond what this server takes (SEGUE_MAX_RENDER_WORK, SEGUE_MAX_BATCH_PIXELS: 422),
    more renders of one transition at once than SEGUE_MAX_ACTIVE_RENDERS and more renders started through
    one share link at once than SEGUE_MAX_ACTIVE_RENDERS_PER_LINK (429), each naming its limit."""
    settings = get_settings()
    size = params.width * params.height
    work = frames * size * params.steps
    if work > settings.max_render_work:
        raise FieldError(
            "frames",
            f"this render is {frames} frames × {params.width}×{params.height} px × {params.steps} steps = "
            f"{work:.3g} pixel-steps, over this server's limit of {settings.max_render_work:.3g} "
            "(SEGUE_MAX_RENDER_WORK): render fewer frames or steps, or a smaller size",
        )
    batch_pixels = params.batch_size * size
    if batch_pixels > settings.max_batch_pixels:
        raise FieldError(
            "batch_size",
            f"a batch of {params.batch_size} frames of {params.width}×{params.height} px is {batch_pixels} "
            f"pixels, over this server's limit of {settings.max_batch_pixels} per batch "
            "(SEGUE_MAX_BATCH_PIXELS): choose a smaller batch size or size",
        )
    active = _active_renders(db, Render.transition_id == transition_id)
    if active >= settings.max_active_renders:
        raise TooMany(
            f"transition {transition_id} already has {active} renders queued or running; the limit is "
            f"{settings.max_active_renders} (SEGUE_MAX_ACTIVE_RENDERS): wait for one to finish or cancel one"
        )
    if link_id is None:
        return
    by_link = _active_renders(db, Render.link_id == link_id)
    if by_link >= settings.max_active_renders_per_link:
        raise TooMany(
            f"this share link already has {by_link} renders queued or running; the limit per link is "
            f"{settings.max_active_renders_per_link} (SEGUE_MAX_ACTIVE_RENDERS_PER_LINK): wait for one to "
            "finish or cancel one"
        )


def _active_renders(db: Session, which: ColumnElement[bool]) -> int:
    """How many renders matching `which` are queued or running."""
    query = (
        select(func.count())
        .select_from(Render)
        .where(which, Render.status.in_((Status.QUEUED, Status.RUNNING)))
    )
    return int(db.scalar(query) or 0)


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


def queue_frames(
    db: Session, render: Render, plans: list[FramePlan], probed: frozenset[str] = frozenset()
) -> Render:
    """Give a render its planned frames, reuse the ones already stored (and the `probed` ones the store
    has) and queue the rest."""
    params = render.snapshot
    frame_keys = keys_of_frames(params.pixels(), plans, params.model_revision)

    store = get_store()
    stored = set(
        db.scalars(
            select(Frame.key).where(Frame.key.in_(set(frame_keys)), Frame.status == Status.DONE).distinct()
        )
    )
    reusable = store.existing(stored | (probed & set(frame_keys)))

    render.frames_total = len(plans)
    now = utcnow()
    for plan, key in zip(plans, frame_keys, strict=True):
        reused = key in reusable
        render.frames.append(
            Frame(
                **{name: value for name, value in asdict(plan).items() if name not in _PLANNED_ONLY},
                key=key,
                status=Status.DONE if reused else Status.PENDING,
                reused=reused,
                seconds=0.0 if reused else None,
                finished_at=now if reused else None,
            )
        )
    render.frames_reused = sum(1 for f in render.frames if f.reused)
    db.add(render)
    db.commit()

    bus = get_bus()
    pending = {f.index for f in render.frames if not f.reused}
    with sent_or_failed(f"render {render.id}", failing_render(db, render)):  # the bus being away fails it too
        for frame in render.frames:
            if frame.reused:
                bus.publish(frame_done(frame))
        if not pending:
            finish_render(db, render, Status.DONE)
            return render
        for position, batch in enumerate(batches(plans, frame_keys, pending, params.batch_size)):
            send_render_batch(render.id, batch, priority=batch_priority(position))
    try:
        bus.publish(progress(render))
    except Exception:  # queued all the same; the stream shows progress from the next event on
        log.warning("render %s: could not announce it was queued", render.id)
    return render


def failing_render(db: Session, render: Render) -> Callable[[str], bool]:
    """How a render whose work cannot be queued ends: failed, with the reason."""
    return lambda reason: finish_render(db, render, Status.FAILED, error=reason)


def finish_render(db: Session, render: Render, status: str, error: str | None = None) -> bool:
    """Move a render to a final status exactly once (concurrent workers race here) and announce it."""
    result = db.execute(
        update(Render)
        .where(Render.id == render.id, Render.status.in_((Status.QUEUED, Status.RUNNING)))
        .values(status=status, error=error, finished_at=utcnow())
    )
    if status == Status.CANCELLED:
        db.execute(
            update(Frame)
            .where(Frame.render_id == render.id, Frame.status.in_((Status.PENDING, Status.RUNNING)))
            .values(status=Status.CANCELLED)
        )
    db.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    db.refresh(render)
    extra = {"error": error} if error else {}
    try:
        get_bus().publish(events.finished(status, render.id, stats=stats(render), **extra))
    except Exception:  # the status is saved; streams end from the database when the event is missing
        log.exception("render %s is %s but the final event could not be published", render.id, status)
    _wake_autofixes(db, render.id)
    return True


def _wake_autofixes(db: Session, render_id: int) -> None:
    """An autopilot round waited for this render: its next step runs now (the reaper sends it otherwise)."""
    waiting = db.scalars(
        select(Autofix.id).where(Autofix.render_id == render_id, Autofix.status == Status.WAITING)
    ).all()
    for autofix_id in waiting:
        try:
            send_autofix(autofix_id)
        except Exception as exc:
            log.warning("autofix %s: could not send its next step (%s); the reaper will", autofix_id, exc)


def cancel_render(db: Session, render: Render) -> Render:
    if render.is_finished:
        raise FieldError(
            "status",
            f"render {render.id} is already {render.status}; only queued or running renders can be cancelled",
        )
    finish_render(db, render, Status.CANCELLED)
    db.refresh(render)
    return render
