"""Suggested intermediate prompts, no engine here: what may be asked, where they go, the queue, the view.

The web side never waits for a language model: `request_suggestions` saves a row and queues it; the
worker (worker/suggestions.py) asks the suggester, probes and ranks, and fills `items` as it goes. The
API shows each item as {prompt, position, score, thumbnail_url}; accepting one is an ordinary
`POST /api/transitions/{id}/keyframes`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.statuses import FINISHED, JobStatus, Status
from infra.queue import send_suggestions
from infra.storage import thumbnail_url
from infra.tables import Keyframe, Suggestion, Transition
from services.errors import FieldError, NotFound
from services.rows import found
from services.sending import failing_job, sent_or_failed

log = logging.getLogger(__name__)

Mode = Literal["bridge", "storyboard"]
MAX_COUNT = 8
DEFAULT_COUNT = 3
#: A suggested position keeps this far from an existing keyframe (a keyframe there would be refused).
KEEP_CLEAR = 0.01


class SuggestionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_keyframe_id: int | None = Field(
        default=None, description="bridge the segment that starts at this keyframe (default: the widest)"
    )
    count: int = Field(default=DEFAULT_COUNT, ge=1, le=MAX_COUNT, description="how many suggestions")
    mode: Mode = Field(
        default="bridge",
        description="bridge: suggestions for one segment; storyboard: a chain of keyframes from start to end",
    )


class SuggestionStarted(BaseModel):
    id: int
    status: JobStatus


class SuggestionItemOut(BaseModel):
    prompt: str
    position: float
    score: float
    thumbnail_url: str | None


class SuggestionOut(BaseModel):
    id: int
    status: JobStatus
    items: list[SuggestionItemOut]


# ---------------------------------------------------------------- where the suggestions go


@dataclass(frozen=True)
class Plan:
    """The two prompts to bridge, where they sit, and the positions the suggestions will get."""

    start: str
    end: str
    left: float
    right: float
    positions: list[float]

    def local(self, position: float) -> float:
        width = self.right - self.left
        return (position - self.left) / width if width > 0 else 0.5


def _segments(keyframes: Sequence[Keyframe]) -> list[tuple[Keyframe, Keyframe]]:
    ordered = sorted(keyframes, key=lambda k: k.position)
    return list(zip(ordered, ordered[1:], strict=False))


def _clear_of(position: float, taken: Sequence[float], low: float, high: float) -> float:
    """The position, moved off existing keyframes (inside (low, high)) so accepting it is never refused."""
    for step in (0, 1, -1, 2, -2, 3, -3):
        p = round(position + step * KEEP_CLEAR, 4)
        if low < p < high and all(abs(p - t) >= KEEP_CLEAR / 2 for t in taken):
            return p
    return round(position, 4)


def plan(
    transition: Transition, mode: str, count: int, after_keyframe_id: int | None, position: float | None
) -> Plan:
    """Which segment, and the suggestions' positions: evenly spaced, or all at a flagged frame's t.

    Raises FieldError when the keyframe or the position does not name a segment of this transition.
    """
    keyframes = list(transition.keyframes)
    segments = _segments(keyframes)
    if not segments:
        raise FieldError("after_keyframe_id", "the transition has no segment to bridge")
    taken = [k.position for k in keyframes]
    if mode == "storyboard":
        left, right = segments[0][0], segments[-1][1]
    elif position is not None:
        if not (math.isfinite(position) and 0 < position < 1):
            raise FieldError("position", f"position must be strictly between 0 and 1 (got {position:g})")
        left, right = next((a, b) for a, b in segments if a.position <= position <= b.position)
    elif after_keyframe_id is not None:
        found = [(a, b) for a, b in segments if a.id == after_keyframe_id]
        if not found:
            ids = ", ".join(str(a.id) for a, _ in segments)
            raise FieldError(
                "after_keyframe_id",
                f"after_keyframe_id must be a keyframe of transition {transition.id} that starts a segment "
                f"({ids}); got {after_keyframe_id}",
            )
        left, right = found[0]
    else:
        left, right = max(segments, key=lambda s: (s[1].position - s[0].position, -s[0].position))
    if position is not None and mode != "storyboard":
        positions = [round(position, 4)] * count
    else:
        width = right.position - left.position
        positions = [
            _clear_of(left.position + (i + 1) / (count + 1) * width, taken, left.position, right.position)
            for i in range(count)
        ]
    return Plan(left.prompt, right.prompt, left.position, right.position, positions)


# ---------------------------------------------------------------- requests


def request_suggestions(
    db: Session, transition: Transition, data: SuggestionCreate, position: float | None = None
) -> Suggestion:
    """Save the request and queue it; the plan is checked first, so a bad request saves nothing."""
    plan(transition, data.mode, data.count, data.after_keyframe_id, position)
    row = Suggestion(
        transition_id=transition.id,
        mode=data.mode,
        after_keyframe_id=data.after_keyframe_id,
        position=position,
        count=data.count,
        status=Status.QUEUED,
        items=[],
        details={},
    )
    db.add(row)
    db.commit()
    with sent_or_failed(f"suggestions {row.id}", failing_job(db, row)):
        send_suggestions(row.id)
    return row


def get_suggestion(db: Session, suggestion_id: int) -> Suggestion:
    return found(db, Suggestion, suggestion_id, "suggestion")


def latest_suggestion(db: Session, transition_id: int) -> Suggestion | None:
    return db.scalar(
        select(Suggestion)
        .where(Suggestion.transition_id == transition_id)
        .order_by(Suggestion.id.desc())
        .limit(1)
    )


def suggestion_out(row: Suggestion) -> SuggestionOut:
    items = [
        SuggestionItemOut(
            prompt=str(item.get("prompt", "")),
            position=float(item.get("position", 0.5)),
            score=float(item.get("score", 0.0)),
            thumbnail_url=thumbnail_url(item),
        )
        for item in (row.items or [])
    ]
    return SuggestionOut(id=row.id, status=row.status, items=items)  # type: ignore[arg-type]


def set_item_state(
    db: Session, row: Suggestion, index: int, state: Literal["accepted", "discarded"]
) -> dict[str, Any]:
    """Mark one item accepted or discarded (the panel's memory; the API shows every item regardless)."""
    if row.status not in FINISHED:
        raise FieldError("state", "the suggestions are still being ranked; try again when they are done")
    items = [dict(item) for item in (row.items or [])]
    if not 0 <= index < len(items):
        raise NotFound("suggestion item", f"{row.id}/{index}")
    items[index]["state"] = state
    row.items = items  # a new list, so the JSON column is written
    db.commit()
    return items[index]
