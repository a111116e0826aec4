"""MoCE (sequential concept introduction) without the engine: a keyframe's switch step search, its view, and
resolving "auto" when a render starts.

A keyframe whose `concepts.switch_step` is "auto" needs a search: the worker (worker/moce.py) renders probes
of the keyframe's own frame and binary-searches N on the Multi-Concept Disparity (core.moce). Searches live
in `concept_searches`, keyed by a hash of their inputs, so identical inputs are searched once and an undone
or redone keyframe finds its search again. The web side never waits for one: saving a keyframe queues it,
`GET /api/keyframes/{id}` shows it, and a render of a transition whose search is not done waits for it
(queued, `waiting_for` naming the keyframe) and starts when it ends; a failed search is a 422 naming the
keyframe.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import suppress
from datetime import UTC
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.params import SEED_MAX, Concepts, RenderSnapshot
from core.registry import model_revision
from core.statuses import JobStatus, Status
from infra.config import get_settings
from infra.queue import send_moce_search
from infra.storage import thumbnail_url
from infra.tables import ConceptSearch, Keyframe, Transition, utcnow
from services.errors import BrokerUnavailable, FieldError
from services.schemas import KeyframeOut
from services.sending import failing_job, sent_or_failed

log = logging.getLogger(__name__)

#: Probe seeds per switch step: the keyframe's seed and the next one (D is their mean). A search is held
#: under its worker's lease (worker/lease.py): one whose worker died is queued again by the reaper once the
#: lease runs out (services/jobs.py), and failed after SEGUE_MAX_ATTEMPTS takes.
PROBE_SEEDS = 2


class ProbeOut(BaseModel):
    step: int = Field(description="N: steps denoised with the first concept alone")
    disparity: float = Field(description="D = S(M, first) - S(M, second), in CLIPScore points")
    thumbnail_url: str | None = Field(description="the probe renders (one per probe seed, side by side)")


class MoceOut(BaseModel):
    status: JobStatus
    chosen_step: int | None = Field(description="the switch step N the search chose (when done)")
    trace: list[ProbeOut] = Field(description="every probe, in the order the binary search made them")
    error: str | None = Field(None, description="why the search failed")


class KeyframeDetail(KeyframeOut):
    """A keyframe and, when its concepts' switch step is "auto", the search for it (null otherwise)."""

    moce: MoceOut | None = None


# ---------------------------------------------------------------- inputs


def concepts_of(keyframe: Keyframe) -> Concepts | None:
    return Concepts.model_validate(keyframe.concepts) if keyframe.concepts else None


def is_auto(keyframe: Keyframe) -> bool:
    concepts = concepts_of(keyframe)
    return concepts is not None and concepts.is_auto


def search_inputs(transition: Transition, keyframe: Keyframe) -> dict[str, Any]:
    """Everything that decides the probes of a keyframe's search (and so its result)."""
    settings = get_settings()
    concepts = concepts_of(keyframe)
    if concepts is None:
        raise ValueError(f"keyframe {keyframe.id} has no concepts")
    seed = transition.seed if keyframe.seed is None else keyframe.seed
    return {
        "model": transition.model,
        "model_revision": model_revision(transition.model, settings.models_folder),
        "prompt": keyframe.prompt,
        "concepts": concepts.model_dump(exclude={"switch_step"}),
        "seeds": [(seed + i) % (SEED_MAX + 1) for i in range(PROBE_SEEDS)],
        "negative_prompt": transition.negative_prompt,
        "steps": transition.steps,
        "guidance_scale": transition.guidance_scale,
        "width": transition.width,
        "height": transition.height,
        "scheduler": transition.scheduler,
        "threshold": settings.moce_threshold,
    }


def input_key(inputs: dict[str, Any]) -> str:
    payload = json.dumps({"v": 1, **inputs}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:40]


# ---------------------------------------------------------------- searches


def find_search(db: Session, transition: Transition, keyframe: Keyframe) -> ConceptSearch | None:
    """The search for the keyframe as it is now (None: never asked for with these inputs)."""
    if not is_auto(keyframe):
        return None
    key = input_key(search_inputs(transition, keyframe))
    return db.scalar(select(ConceptSearch).where(ConceptSearch.input_key == key))


def _send(db: Session, row: ConceptSearch) -> None:
    # A search that cannot be queued fails, shown on its keyframe; the keyframe's edit itself stands.
    with suppress(BrokerUnavailable), sent_or_failed(f"switch step search {row.id}", failing_job(db, row)):
        send_moce_search(row.id)


def ensure_search(
    db: Session, transition: Transition, keyframe: Keyframe, *, retry: bool = False
) -> ConceptSearch:
    """The keyframe's search, queued if there is none for its inputs.

    retry: a failed search is queued again (the person saved the keyframe again: maybe a CLIP is there now),
    and so is one whose worker's lease ran out (the reaper would soon); a queued one is sent again (a second
    copy of the task claims nothing: a message lost with a broker is replaced).
    """
    inputs = search_inputs(transition, keyframe)
    key = input_key(inputs)
    row = db.scalar(select(ConceptSearch).where(ConceptSearch.input_key == key))
    if row is None:
        row = ConceptSearch(
            transition_id=transition.id,
            keyframe_id=keyframe.id,
            input_key=key,
            inputs=inputs,
            status=Status.QUEUED,
            trace=[],
            details={},
        )
        db.add(row)
        try:
            db.commit()
        except IntegrityError:  # another request made it meanwhile: that one is queued
            db.rollback()
            found = db.scalar(select(ConceptSearch).where(ConceptSearch.input_key == key))
            assert found is not None
            return found
        _send(db, row)
    elif retry and (row.status == Status.FAILED or is_lost(row)):
        # Conditional: a search a worker took meanwhile is left to it. A new request: takes count from 0.
        now = utcnow()
        again = db.execute(
            update(ConceptSearch)
            .where(
                ConceptSearch.id == row.id,
                (ConceptSearch.status == Status.FAILED)
                | (
                    (ConceptSearch.status == Status.RUNNING)
                    & or_(ConceptSearch.leased_until.is_(None), ConceptSearch.leased_until < now)
                ),
            )
            .values(
                status=Status.QUEUED,
                error=None,
                trace=[],
                chosen_step=None,
                details={},
                started_at=None,
                finished_at=None,
                lease_token=None,
                leased_until=None,
                attempts=0,
            ),
            execution_options={"synchronize_session": False},
        ).rowcount  # type: ignore[attr-defined]
        db.commit()
        db.refresh(row)
        if again:
            _send(db, row)
    elif retry and row.status == Status.QUEUED:
        _send(db, row)
    return row


def is_lost(row: ConceptSearch) -> bool:
    """A search left "running" by a worker that died: its lease ran out (the reaper queues it again)."""
    until = row.leased_until
    if row.status != Status.RUNNING:
        return False
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    return until is None or until < utcnow()


def ensure_searches(db: Session, transition: Transition, *, retry: bool = False) -> None:
    """Queue the searches of every "auto" keyframe that has none for its current inputs."""
    for keyframe in list(transition.keyframes):
        if is_auto(keyframe):
            ensure_search(db, transition, keyframe, retry=retry)


def after_edit(db: Session, transition: Transition, keyframe: Keyframe | None = None) -> None:
    """After a saved edit: the searches it needs. Never fails the edit, which is saved already."""
    try:
        if keyframe is not None:
            if is_auto(keyframe):
                ensure_search(db, transition, keyframe, retry=True)
        else:
            ensure_searches(db, transition)
    except Exception:
        log.exception("could not queue the switch step searches of transition %s", transition.id)
        db.rollback()


def _where(keyframe: Keyframe) -> str:
    if keyframe.is_start:
        return "the start keyframe"
    if keyframe.is_end:
        return "the end keyframe"
    return f"the keyframe at {keyframe.position:g}"


class SearchPending(FieldError):
    """An "auto" switch step whose search is queued or running: a render waits for it (status queued)."""


def placeholder_steps(snapshot: RenderSnapshot) -> RenderSnapshot:
    """The snapshot with every "auto" switch step as 0: plannable (frame count, positions) before the
    searches are done; never rendered."""
    keyframes = [
        k.model_copy(update={"concepts": k.concepts.model_copy(update={"switch_step": 0})})
        if k.concepts is not None and k.concepts.is_auto
        else k
        for k in snapshot.keyframes
    ]
    return snapshot.model_copy(update={"keyframes": keyframes})


def resolve(db: Session, transition: Transition, snapshot: RenderSnapshot) -> RenderSnapshot:
    """The snapshot with every "auto" switch step replaced by its search's chosen step.

    A failed search is a FieldError (422) naming the keyframe; one that is not done is SearchPending (one
    that does not exist yet is queued first), which start_render turns into a render that waits for it.
    A keyframe moved or removed since the snapshot was taken is a FieldError too.
    """
    if not any(k.concepts is not None and k.concepts.is_auto for k in snapshot.keyframes):
        return snapshot
    rows = {round(k.position, 9): k for k in transition.keyframes}
    keyframes = []
    for shot in snapshot.keyframes:
        concepts = shot.concepts
        if concepts is None or not concepts.is_auto:
            keyframes.append(shot)
            continue
        keyframe = rows.get(round(shot.position, 9))
        if keyframe is None or keyframe.concepts is None:
            raise FieldError(
                "concepts",
                f"the keyframe at t = {shot.position:g} with an automatic switch step was moved or removed "
                "since this render was asked for; render again",
            )
        row = ensure_search(db, transition, keyframe)
        where = _where(keyframe)
        if row.status == Status.FAILED:
            raise FieldError(
                "concepts",
                f"the switch step search for {where} failed: {row.error}. Give it a switch step number "
                "instead of \u201cauto\u201d, or save it again to search again",
            )
        if row.status != Status.DONE or row.chosen_step is None:
            raise SearchPending(
                "concepts",
                f"waiting for the switch step search for {where}; the render starts when it is done",
            )
        chosen = concepts.model_copy(update={"switch_step": int(row.chosen_step)})
        keyframes.append(shot.model_copy(update={"concepts": chosen}))
    return snapshot.model_copy(update={"keyframes": keyframes})


# ---------------------------------------------------------------- views


def moce_out(row: ConceptSearch) -> MoceOut:
    trace = [
        ProbeOut(
            step=int(entry["step"]),
            disparity=float(entry["disparity"]),
            thumbnail_url=thumbnail_url(entry),
        )
        for entry in (row.trace or [])
    ]
    return MoceOut(
        status=row.status,  # type: ignore[arg-type]
        chosen_step=row.chosen_step if row.status == Status.DONE else None,
        trace=trace,
        error=row.error,
    )


def keyframe_detail(db: Session, keyframe: Keyframe) -> KeyframeDetail:
    out = KeyframeDetail.model_validate(keyframe, from_attributes=True)
    row = find_search(db, keyframe.transition, keyframe)
    out.moce = moce_out(row) if row is not None else None
    return out


def panel_context(db: Session, keyframe: Keyframe) -> dict[str, Any]:
    """What templates/partials/keyframe_concepts.html shows of a keyframe's search."""
    concepts = concepts_of(keyframe)
    row = (
        find_search(db, keyframe.transition, keyframe) if concepts is not None and concepts.is_auto else None
    )
    trace = [
        {
            **entry,
            "thumbnail_url": thumbnail_url(entry),
            "chosen": row is not None and entry.get("step") == row.chosen_step,
        }
        for entry in (row.trace if row is not None else [])
    ]
    return {"k": keyframe, "concepts": concepts, "search": row, "trace": trace}
