"""What Segue does with transitions, keyframes and renders; the JSON API and the pages both call it."""

from __future__ import annotations

import logging
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from app import events
from app.config import get_settings
from app.models import Edit, Frame, Keyframe, Render, Transition, utcnow
from app.prompts import prompt_warning
from app.queue import send_render_batch
from app.schemas import (
    FieldError,
    FrameOut,
    KeyframeCreate,
    KeyframeOut,
    KeyframeUpdate,
    RenderOut,
    RenderStats,
    RenderStatus,
    RenderSummary,
    TransitionCreate,
    TransitionOut,
    TransitionUpdate,
    Warning_,
)
from app.storage import get_store
from worker.engine.schedule import Key, PixelParams, frame_key, plan_frames, render_order

log = logging.getLogger(__name__)

SETTING_FIELDS = (
    "negative_prompt",
    "frames",
    "seed",
    "steps",
    "guidance_scale",
    "width",
    "height",
    "scheduler",
    "text_interpolation",
    "batch_size",
    "model",
)


class NotFound(Exception):
    def __init__(self, what: str, ident: int) -> None:
        super().__init__(f"{what} {ident} does not exist")


# ---------------------------------------------------------------- transitions


def get_transition(db: Session, transition_id: int) -> Transition:
    transition = db.get(Transition, transition_id)
    if transition is None:
        raise NotFound("transition", transition_id)
    return transition


def list_transitions(db: Session, limit: int | None = None, offset: int = 0) -> list[Transition]:
    """Most recently edited first; keyframes loaded in one extra query."""
    query = (
        select(Transition)
        .options(selectinload(Transition.keyframes))
        .order_by(Transition.updated_at.desc(), Transition.id.desc())
        .offset(offset)
    )
    return list(db.scalars(query if limit is None else query.limit(limit)))


def count_transitions(db: Session) -> int:
    return db.scalar(select(func.count(Transition.id))) or 0


def _record(db: Session, transition: Transition, kind: str, payload: dict[str, Any]) -> None:
    """Bump the version and keep the change in the edit history."""
    transition.version += 1
    transition.updated_at = utcnow()
    db.add(Edit(transition_id=transition.id, version=transition.version, kind=kind, payload=payload))


def create_transition(db: Session, data: TransitionCreate) -> Transition:
    settings = get_settings()
    size = settings.default_size
    transition = Transition(
        title=data.title or _default_title(data.start_prompt, data.end_prompt),
        negative_prompt=data.negative_prompt,
        frames=data.frames,
        seed=data.seed,
        steps=data.steps,
        guidance_scale=data.guidance_scale,
        width=data.width or size,
        height=data.height or size,
        scheduler=data.scheduler,
        text_interpolation=data.text_interpolation,
        batch_size=data.batch_size,
        model=data.model or settings.model,
        version=1,
    )
    transition.keyframes = [
        Keyframe(position=0.0, prompt=data.start_prompt, is_start=True),
        Keyframe(position=1.0, prompt=data.end_prompt, is_end=True),
    ]
    db.add(transition)
    db.flush()
    db.add(Edit(transition_id=transition.id, version=1, kind="create", payload=data.model_dump()))
    db.commit()
    return transition


def _default_title(start: str, end: str) -> str:
    def short(p: str) -> str:
        return p if len(p) <= 40 else p[:39].rstrip() + "…"

    return f"{short(start)} → {short(end)}"


def _endpoint(transition: Transition, start: bool) -> Keyframe:
    return next(k for k in transition.keyframes if (k.is_start if start else k.is_end))


def update_transition(db: Session, transition: Transition, patch: TransitionUpdate) -> Transition:
    changes = patch.model_dump(exclude_none=True)
    if not changes:
        return transition
    for name in ("start_prompt", "end_prompt"):
        if name in changes:
            _endpoint(transition, start=name == "start_prompt").prompt = changes[name]
    if "title" in changes:
        transition.title = changes["title"] or transition.title
    for name in SETTING_FIELDS:
        if name in changes:
            setattr(transition, name, changes[name])
    _record(db, transition, "update", changes)
    db.commit()
    return transition


def list_edits(db: Session, transition: Transition) -> list[Edit]:
    return list(db.scalars(select(Edit).where(Edit.transition_id == transition.id).order_by(Edit.id)))


def delete_transition(db: Session, transition: Transition) -> None:
    db.delete(transition)
    db.commit()


def transition_warnings(transition: Transition) -> list[Warning_]:
    warnings = []
    for keyframe in transition.keyframes:
        field = "start_prompt" if keyframe.is_start else "end_prompt" if keyframe.is_end else "prompt"
        message = prompt_warning(field, keyframe.prompt, transition.model)
        if message:
            if field == "prompt":
                message = f"keyframe at {keyframe.position:g}: {message}"
            warnings.append(Warning_(field=field, message=message))
    message = prompt_warning("negative_prompt", transition.negative_prompt, transition.model)
    if message:
        warnings.append(Warning_(field="negative_prompt", message=message))
    return warnings


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
        .where(Frame.render_id.in_(list(done)), Frame.status == "done")
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
    return TransitionOut(
        id=transition.id,
        title=transition.title,
        version=transition.version,
        start_prompt=_endpoint(transition, True).prompt,
        end_prompt=_endpoint(transition, False).prompt,
        keyframes=[
            KeyframeOut(id=k.id, position=k.position, prompt=k.prompt, is_start=k.is_start, is_end=k.is_end)
            for k in transition.keyframes
        ],
        warnings=transition_warnings(transition),
        latest_render=RenderSummary(
            id=render.id,
            status=cast(RenderStatus, render.status),
            transition_version=render.transition_version,
        )
        if render
        else None,
        created_at=transition.created_at,
        updated_at=transition.updated_at,
        **{name: getattr(transition, name) for name in SETTING_FIELDS},
    )


# ---------------------------------------------------------------- keyframes


def get_keyframe(db: Session, keyframe_id: int) -> Keyframe:
    keyframe = db.get(Keyframe, keyframe_id)
    if keyframe is None:
        raise NotFound("keyframe", keyframe_id)
    return keyframe


def _check_free(transition: Transition, position: float, ignore: Keyframe | None = None) -> None:
    for other in transition.keyframes:
        if other is not ignore and abs(other.position - position) < 1e-6:
            raise FieldError(
                "position",
                f"position {position:g} is taken by the keyframe \u201c{other.prompt[:40]}\u201d; "
                "choose another position strictly between 0 and 1",
            )


def add_keyframe(db: Session, transition: Transition, data: KeyframeCreate) -> Keyframe:
    _check_free(transition, data.position)
    keyframe = Keyframe(position=data.position, prompt=data.prompt)
    transition.keyframes.append(keyframe)
    db.flush()
    _record(db, transition, "add_keyframe", {"id": keyframe.id, **data.model_dump()})
    db.commit()
    return keyframe


def update_keyframe(db: Session, keyframe: Keyframe, patch: KeyframeUpdate) -> Keyframe:
    changes = patch.model_dump(exclude_none=True)
    if not changes:
        return keyframe
    transition = keyframe.transition
    if "position" in changes:
        if keyframe.is_endpoint:
            where = "0" if keyframe.is_start else "1"
            raise FieldError(
                "position", f"the {'start' if keyframe.is_start else 'end'} keyframe stays at {where}"
            )
        _check_free(transition, changes["position"], ignore=keyframe)
        keyframe.position = changes["position"]
    if "prompt" in changes:
        keyframe.prompt = changes["prompt"]
    _record(db, transition, "update_keyframe", {"id": keyframe.id, **changes})
    db.commit()
    return keyframe


def delete_keyframe(db: Session, keyframe: Keyframe) -> None:
    if keyframe.is_endpoint:
        raise FieldError(
            "keyframe", "the start and end keyframes cannot be deleted; edit their prompts instead"
        )
    transition = keyframe.transition
    transition.keyframes.remove(keyframe)
    _record(db, transition, "delete_keyframe", {"id": keyframe.id, "position": keyframe.position})
    db.commit()


# ---------------------------------------------------------------- renders


class BrokerUnavailable(Exception):
    pass


def get_render(db: Session, render_id: int) -> Render:
    render = db.get(Render, render_id)
    if render is None:
        raise NotFound("render", render_id)
    return render


def snapshot(transition: Transition) -> dict[str, Any]:
    """Everything a render needs, frozen: later edits to the transition do not reach a running render."""
    return {
        **{name: getattr(transition, name) for name in SETTING_FIELDS},
        "keyframes": [{"position": k.position, "prompt": k.prompt} for k in transition.keyframes],
    }


def pixel_params(params: dict[str, Any]) -> PixelParams:
    return PixelParams(
        model=params["model"],
        negative_prompt=params["negative_prompt"],
        seed=params["seed"],
        steps=params["steps"],
        guidance_scale=params["guidance_scale"],
        width=params["width"],
        height=params["height"],
        scheduler=params["scheduler"],
        text_interpolation=params["text_interpolation"],
    )


def start_render(db: Session, transition: Transition) -> Render:
    """Plan every frame, reuse the ones already stored, and queue the rest in batches."""
    params = snapshot(transition)
    keys = [Key(k["position"], k["prompt"]) for k in params["keyframes"]]
    plans = plan_frames(keys, params["frames"])
    pixels = pixel_params(params)
    frame_keys = [frame_key(pixels, plan) for plan in plans]

    store = get_store()
    stored = set(
        db.scalars(select(Frame.key).where(Frame.key.in_(set(frame_keys)), Frame.status == "done").distinct())
    )
    reusable = {key for key in stored if store.exists(key)}

    render = Render(
        transition_id=transition.id,
        transition_version=transition.version,
        status="queued",
        params=params,
        model=params["model"],
        frames_total=len(plans),
    )
    now = utcnow()
    for plan, key in zip(plans, frame_keys, strict=True):
        reused = key in reusable
        render.frames.append(
            Frame(
                index=plan.index,
                t=plan.t,
                segment=plan.segment,
                local_t=plan.local_t,
                prompt_a=plan.prompt_a,
                prompt_b=plan.prompt_b,
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

    bus = events.get_bus()
    for frame in render.frames:
        if frame.reused:
            bus.publish(render.id, events.FRAME, frame_payload(render, frame))
    pending = {f.index for f in render.frames if not f.reused}
    order = [i for i in render_order(len(plans)) if i in pending]
    batch = max(1, params["batch_size"])
    if not order:
        finish_render(db, render, "done")
        return render
    try:
        for start in range(0, len(order), batch):
            send_render_batch(render.id, order[start : start + batch])
    except Exception as exc:  # broker down: say so instead of leaving a render queued forever
        log.exception("could not queue render %s", render.id)
        render.status = "failed"
        render.error = f"the render queue is unreachable: {exc}"
        render.finished_at = utcnow()
        db.commit()
        bus.publish(render.id, events.FAILED, {"render_id": render.id, "error": render.error})
        raise BrokerUnavailable(render.error) from exc
    bus.publish(render.id, events.PROGRESS, progress_payload(render))
    return render


def frame_payload(render: Render, frame: Frame) -> dict[str, Any]:
    return {
        "render_id": render.id,
        "index": frame.index,
        "t": frame.t,
        "url": frame_url(frame),
        "reused": frame.reused,
        "seconds": frame.seconds,
    }


def progress_payload(render: Render) -> dict[str, Any]:
    done = sum(1 for f in render.frames if f.status == "done")
    total = render.frames_total or 1
    return {
        "render_id": render.id,
        "status": render.status,
        "done": done,
        "total": render.frames_total,
        "fraction": round(done / total, 4),
    }


def stats(render: Render) -> RenderStats:
    return RenderStats(
        frames_total=render.frames_total,
        frames_computed=render.frames_computed,
        frames_reused=render.frames_reused,
        seconds=round(render.seconds, 3) if render.seconds is not None else None,
    )


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
    payload: dict[str, Any] = {"render_id": render.id, "stats": stats(render).model_dump()}
    if error:
        payload["error"] = error
    events.get_bus().publish(render.id, status, payload)
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


def frame_url(frame: Frame) -> str | None:
    return get_store().url(frame.key) if frame.status == "done" else None


def render_out(render: Render) -> RenderOut:
    return RenderOut(
        id=render.id,
        transition_id=render.transition_id,
        transition_version=render.transition_version,
        status=cast(RenderStatus, render.status),
        model=render.model,
        error=render.error,
        frames=[
            FrameOut(
                index=f.index,
                t=f.t,
                status=f.status,
                url=frame_url(f),
                segment=f.segment,
                local_t=f.local_t,
                prompt_a=f.prompt_a,
                prompt_b=f.prompt_b,
                reused=f.reused,
                seconds=f.seconds,
            )
            for f in render.frames
        ],
        stats=stats(render),
        created_at=render.created_at,
    )
