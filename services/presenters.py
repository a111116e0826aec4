"""The shapes Segue shows: API objects and event messages built from stored rows, each in one place."""

from __future__ import annotations

from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import events
from core.params import SETTING_FIELDS
from core.statuses import CancellableStatus, Status
from infra.storage import get_store
from infra.tables import Frame, Render, Transition
from services import timing
from services.schemas import FrameOut, KeyframeOut, RenderOut, RenderSummary, TransitionOut
from services.transitions import endpoint, transition_warnings


def latest_render(db: Session, transition: Transition) -> Render | None:
    return latest_renders(db, [transition]).get(transition.id)


def latest_renders(db: Session, transitions: list[Transition]) -> dict[int, Render]:
    """The newest render (highest id) of each transition, in one query."""
    ids = [t.id for t in transitions]
    if not ids:
        return {}
    newest = select(func.max(Render.id)).where(Render.transition_id.in_(ids)).group_by(Render.transition_id)
    return {r.transition_id: r for r in db.scalars(select(Render).where(Render.id.in_(newest)))}


def thumbnails(db: Session, renders: list[Render], per_render: int = 8) -> dict[int, list[str]]:
    """Up to `per_render` evenly spaced finished frames of each render, in one query."""
    done: dict[int, list[str]] = {r.id: [] for r in renders}
    if not done:
        return {}
    rows = db.execute(
        select(Frame.render_id, Frame.key)
        .where(Frame.render_id.in_(list(done)), Frame.status == Status.DONE)
        .order_by(Frame.render_id, Frame.index)
    )
    for render_id, key in rows:
        done[render_id].append(key)
    store = get_store()
    return {
        rid: [store.url(k) for k in keys[:: max(1, len(keys) // per_render)][:per_render]]
        for rid, keys in done.items()
    }


_UNSET: Any = object()


def transition_out(db: Session, transition: Transition, render: Render | None = _UNSET) -> TransitionOut:
    """`render`: the transition's newest render when the caller already has it (lists)."""
    if render is _UNSET:
        render = latest_render(db, transition)
    clock = timing.clock(transition)
    keyframes = []
    for k in transition.keyframes:
        out = KeyframeOut.model_validate(k, from_attributes=True)
        out.time = round(clock.seconds_of(k.position), 4)
        out.hold_seconds = round((k.hold_frames or 0) / transition.fps, 4)
        keyframes.append(out)
    return TransitionOut(
        id=transition.id,
        title=transition.title,
        version=transition.version,
        start_prompt=endpoint(transition, True).prompt,
        end_prompt=endpoint(transition, False).prompt,
        keyframes=keyframes,
        duration=round(clock.duration, 4),
        warnings=transition_warnings(transition),
        latest_render=RenderSummary.model_validate(render) if render else None,
        created_at=transition.created_at,
        updated_at=transition.updated_at,
        **{name: getattr(transition, name) for name in SETTING_FIELDS},
    )


def frame_url(frame: Frame) -> str | None:
    return get_store().url(frame.key) if frame.status == Status.DONE else None


def stats(render: Render) -> events.RenderStats:
    return events.RenderStats(
        frames_total=render.frames_total,
        frames_computed=render.frames_computed,
        frames_reused=render.frames_reused,
        seconds=round(render.seconds, 3) if render.seconds is not None else None,
    )


def render_out(render: Render) -> RenderOut:
    fps = int((render.params or {}).get("fps") or 12)
    return RenderOut(
        id=render.id,
        transition_id=render.transition_id,
        transition_version=render.transition_version,
        status=cast(CancellableStatus, render.status),
        model=render.model,
        error=render.error,
        frames=[FrameOut(**_fields(f, FrameOut), time=round(f.index / fps, 4)) for f in render.frames],
        stats=stats(render),
        created_at=render.created_at,
    )


# ---------------------------------------------------------------- events built from rows


def _fields(frame: Frame, shape: type[BaseModel]) -> dict[str, Any]:
    """The stored frame's values for every field of `shape`, its URL from the frame store."""
    values = {name: getattr(frame, name) for name in shape.model_fields if hasattr(frame, name)}
    return {**values, "url": frame_url(frame)}


def frame_done(frame: Frame) -> events.FrameDone:
    return events.FrameDone(**_fields(frame, events.FrameDone))


def progress(render: Render) -> events.Progress:
    done = sum(1 for f in render.frames if f.status == Status.DONE)
    return events.Progress.of(render.id, render.status, done, render.frames_total)
