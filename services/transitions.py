"""Transitions and their keyframes: create, read, edit (each edit bumps the version and is recorded)."""

from __future__ import annotations

import logging

from pydantic import BaseModel
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from core import events
from core.events import TransitionDeleted
from core.params import SETTING_FIELDS
from core.statuses import Status
from core.timeline import POSITION_TOLERANCE
from infra.bus import get_bus
from infra.channels import announce
from infra.config import get_settings
from infra.storage import get_store
from infra.tables import Edit, Export, Keyframe, Render, Transition, utcnow
from services import history, keyframe_images, moce, noise_paths, timing
from services.errors import FieldError, NotFound
from services.history import Actor
from services.prompts import prompt_warning
from services.rows import found
from services.schemas import KeyframeCreate, KeyframeUpdate, PromptWarning, TransitionCreate, TransitionUpdate

log = logging.getLogger(__name__)


def get_transition(db: Session, transition_id: int) -> Transition:
    return found(db, Transition, transition_id, "transition")


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


# Every edit below goes through history.edit: it claims the next version atomically (a stale `expected`
# version is a 409 Conflict), records what changed and who changed it, and announces it to co-viewers.
# `expected`: the version the client based the write on (None: scripts, accepted as today).


def create_transition(db: Session, data: TransitionCreate) -> Transition:
    settings = get_settings()
    values = data.model_dump(include=set(SETTING_FIELDS))
    values["width"] = data.width or settings.default_size
    values["height"] = data.height or settings.default_size
    values["model"] = data.model or settings.model
    transition = Transition(
        title=data.title or _default_title(data.start_prompt, data.end_prompt), version=1, **values
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


def endpoint(transition: Transition, start: bool) -> Keyframe:
    return next(k for k in transition.keyframes if (k.is_start if start else k.is_end))


def update_transition(
    db: Session,
    transition: Transition,
    patch: TransitionUpdate,
    *,
    expected: int | None = None,
    actor: Actor | None = None,
    because: str | None = None,
) -> Transition:
    changes = patch.model_dump(exclude_none=True, exclude={"version"}) | noise_paths.cleared_settings(patch)
    if not changes and expected is None:
        return transition

    def change() -> history.Outcome:
        for name in ("start_prompt", "end_prompt"):
            if name in changes:
                endpoint(transition, start=name == "start_prompt").prompt = changes[name]
        if "title" in changes:
            transition.title = changes["title"] or transition.title
        for name in SETTING_FIELDS:
            if name in changes:
                setattr(transition, name, changes[name])
        return history.Outcome(payload=changes)

    history.edit(db, transition, "update", change, expected=expected, actor=actor, because=because)
    moce.after_edit(db, transition)  # new settings: the "auto" switch steps need searches for them
    return transition


def list_edits(db: Session, transition: Transition) -> list[Edit]:
    return list(db.scalars(select(Edit).where(Edit.transition_id == transition.id).order_by(Edit.id)))


def delete_transition(db: Session, transition: Transition) -> None:
    transition_id = transition.id
    # Its unfinished renders are cancelled first: workers drop their batches (a batch whose render is gone
    # is skipped), and every open stream ends with a final event (or, its render row gone, from the database).
    unfinished = [r.id for r in transition.renders if not r.is_finished]
    if unfinished:
        db.execute(
            update(Render)
            .where(Render.id.in_(unfinished), Render.status.in_((Status.QUEUED, Status.RUNNING)))
            .values(status=Status.CANCELLED, error="its transition was deleted", finished_at=utcnow())
        )
        db.commit()
        for render_id in unfinished:
            try:
                get_bus().publish(events.Cancelled(render_id=render_id))
            except Exception:  # the streams end anyway once the render row is gone
                log.warning("could not announce that render %s was cancelled", render_id)
    # Export files are the transition's alone (frames are shared by content key with other transitions).
    files = [
        name
        for name in db.scalars(
            select(Export.file_name).where(Export.render_id.in_([r.id for r in transition.renders]))
        )
        if name
    ]
    db.delete(transition)
    db.commit()
    announce(TransitionDeleted(transition_id=transition_id))
    store = get_store()
    for name in files:
        try:
            store.delete_export(name)
        except Exception:  # a file left behind is garbage, not an error the person can act on
            log.warning("could not delete export file %s of deleted transition %s", name, transition_id)


def transition_warnings(transition: Transition) -> list[PromptWarning]:
    warnings = []
    for keyframe in transition.keyframes:
        field = "start_prompt" if keyframe.is_start else "end_prompt" if keyframe.is_end else "prompt"
        message = prompt_warning(field, keyframe.prompt, transition.model)
        if message:
            if field == "prompt":
                message = f"keyframe at {keyframe.position:g}: {message}"
            warnings.append(PromptWarning(field=field, message=message))
    message = prompt_warning("negative_prompt", transition.negative_prompt, transition.model)
    if message:
        warnings.append(PromptWarning(field="negative_prompt", message=message))
    return warnings


# ---------------------------------------------------------------- keyframes


def get_keyframe(db: Session, keyframe_id: int) -> Keyframe:
    return found(db, Keyframe, keyframe_id, "keyframe")


def _check_free(transition: Transition, position: float, ignore: Keyframe | None = None) -> None:
    for other in transition.keyframes:
        if other is not ignore and abs(other.position - position) < POSITION_TOLERANCE:
            raise FieldError(
                "position",
                f"position {position:g} is taken by the keyframe \u201c{other.prompt[:40]}\u201d; "
                "choose another position strictly between 0 and 1",
            )


def check_prompt_or_image(prompt: str | None, image: object) -> None:
    """A keyframe needs a prompt, an image, or both (an image alone is captioned by the worker)."""
    if not (prompt or "").strip() and image is None:
        raise FieldError("prompt", "prompt must not be empty (a keyframe needs a prompt, an image, or both)")


def add_keyframe(
    db: Session,
    transition: Transition,
    data: KeyframeCreate,
    *,
    expected: int | None = None,
    actor: Actor | None = None,
    because: str | None = None,
    image: keyframe_images.ImageChange | None = None,
) -> Keyframe:
    # Time forms (docs/animatics.md): `time` places the keyframe, `hold_seconds` sets its hold.
    values = timing.resolve_keyframe(transition, data.model_dump(exclude={"version"}))
    if values.get("position") is None:
        raise FieldError("position", "position is required: a t strictly between 0 and 1 (or give time)")
    if image is not None and image.record is not None:
        values["image"] = image.record
    check_prompt_or_image(values.get("prompt", ""), values.get("image"))
    added: list[Keyframe] = []

    def change() -> history.Outcome:
        _check_free(transition, values["position"])
        limit = get_settings().max_keyframes
        if len(transition.keyframes) >= limit:
            raise FieldError(
                "keyframes",
                f"transition {transition.id} has {len(transition.keyframes)} keyframes, this server's limit "
                f"(SEGUE_MAX_KEYFRAMES); delete one before adding another",
            )
        keyframe = Keyframe(**values)
        transition.keyframes.append(keyframe)
        db.flush()
        added.append(keyframe)
        if image is not None:  # last: a refused edit stores nothing
            keyframe_images.keep(image)
        return history.Outcome(payload={"id": keyframe.id, **values})

    history.edit(db, transition, "add_keyframe", change, expected=expected, actor=actor, because=because)
    moce.after_edit(db, transition, added[0])  # concepts with switch step "auto": queue the search
    return added[0]


def _fresh_keyframe(db: Session, transition: Transition, keyframe_id: int) -> Keyframe:
    """The keyframe as it is now, under the edit's lock (a concurrent edit may have deleted it)."""
    keyframe = db.get(Keyframe, keyframe_id)
    if keyframe is None or keyframe.transition_id != transition.id:
        raise NotFound("keyframe", keyframe_id)
    return keyframe


def update_keyframe(
    db: Session,
    keyframe: Keyframe,
    patch: KeyframeUpdate,
    *,
    expected: int | None = None,
    actor: Actor | None = None,
    because: str | None = None,
    image: keyframe_images.ImageChange | None = None,
) -> Keyframe:
    changes = patch.model_dump(exclude_none=True, exclude={"version"}) | noise_paths.keyframe_changes(patch)
    changes = timing.resolve_keyframe(keyframe.transition, changes)
    if isinstance(changes.get("concepts"), BaseModel):  # MoCE: stored as JSON, recorded as plain values
        changes["concepts"] = changes["concepts"].model_dump()
    if image is not None:
        changes["image"] = image.record
    if not changes and expected is None:
        return keyframe
    transition, keyframe_id = keyframe.transition, keyframe.id

    def change() -> history.Outcome:
        current = _fresh_keyframe(db, transition, keyframe_id)
        check_prompt_or_image(changes.get("prompt", current.prompt), changes.get("image", current.image))
        if "position" in changes:
            if current.is_endpoint:
                where = "0" if current.is_start else "1"
                raise FieldError(
                    "position", f"the {'start' if current.is_start else 'end'} keyframe stays at {where}"
                )
            _check_free(transition, changes["position"], ignore=current)
            current.position = changes["position"]
        if "prompt" in changes:
            current.prompt = changes["prompt"]
        noise_paths.apply_keyframe_settings(current, changes)
        if image is not None:
            current.image = image.record
            keyframe_images.keep(image)  # last: a refused edit stores nothing
        return history.Outcome(payload={"id": keyframe_id, **changes})

    history.edit(db, transition, "update_keyframe", change, expected=expected, actor=actor, because=because)
    updated = _fresh_keyframe(db, transition, keyframe_id)
    moce.after_edit(db, transition, updated)
    return updated


def delete_keyframe(
    db: Session, keyframe: Keyframe, *, expected: int | None = None, actor: Actor | None = None
) -> None:
    if keyframe.is_endpoint:
        raise FieldError(
            "keyframe", "the start and end keyframes cannot be deleted; edit their prompts instead"
        )
    transition, keyframe_id = keyframe.transition, keyframe.id

    def change() -> history.Outcome:
        current = _fresh_keyframe(db, transition, keyframe_id)
        position = current.position
        transition.keyframes.remove(current)
        return history.Outcome(payload={"id": keyframe_id, "position": position})

    history.edit(db, transition, "delete_keyframe", change, expected=expected, actor=actor)
