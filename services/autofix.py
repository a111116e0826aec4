"""The loop, no engine here: ask for fixes of one problem, start, read or cancel an autopilot, apply a fix.

The web side never probes or waits: it saves a row and queues a step (worker/autofix.py does the engine
work). Applying a fix is an ordinary edit (undoable, recorded in the history with the problem it answers)
followed by an ordinary render, which computes only the frames the edit changed.

A proposal (what a worker stores in `Autofix.proposals`, best first):
  {id, kind: "bridge" | "frames", label, prompt?, position, frames?, predicted, current, thumbnail_key}
- bridge: a keyframe `prompt` at `position` (the problem's t);
- frames: the transition's (single segment) or the segment's frame count raised to `frames`, so the new
  frames fall between the existing ones and every existing frame is reused;
- predicted / current: the largest scorer change across the problem's stretch with the fix (from a
  probe render of the frame the fix adds) / as it is now.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.params import caps
from core.statuses import CancellableStatus, Status
from infra.queue import send_autofix
from infra.storage import thumbnail_url
from infra.tables import Autofix, Render, Transition, utcnow
from services import rendering, transitions
from services.errors import Busy, FieldError
from services.history import Actor
from services.rows import found
from services.schemas import KeyframeCreate, KeyframeUpdate, TransitionUpdate
from services.sending import QUEUE_AWAY, sent_or_failed

log = logging.getLogger(__name__)

#: Statuses of a run that has not ended.
ACTIVE = (Status.QUEUED, Status.RUNNING, Status.WAITING)
MAX_ROUNDS = 10
DEFAULT_ROUNDS = 3
#: The autopilot's default frame budget, in renders of the transition (default_budget).
BUDGET_RENDERS = 2


class AutofixCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_rounds: int = Field(
        default=DEFAULT_ROUNDS, ge=1, le=MAX_ROUNDS, description="rounds at most (each one problem, one edit)"
    )
    budget_frames: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="frames the autopilot may render in all (probes and re-renders); default: twice the "
        "transition's frame count (docs/loop.md: with one render's worth, a bridge rarely fits)",
    )
    target_smoothness: float | None = Field(
        default=None, ge=0, le=1, description="stop once the map's smoothness (1 - Gini) reaches this"
    )


class AutofixStarted(BaseModel):
    id: int
    status: CancellableStatus


class RoundOut(BaseModel):
    problem: dict[str, Any] | None = Field(description="the problem the round took on (as in /scores)")
    fix: dict[str, Any] | None = Field(description="the fix applied (a proposal)")
    edit_version: int | None = Field(description="the transition version the round's edit made")
    before: dict[str, Any] | None = Field(description="summary of the render the round started from")
    after: dict[str, Any] | None = Field(description="summary of the round's render (null while it renders)")
    outcome: str | None = Field(None, description="kept | reverted | cancelled; null while it renders")


class ProposalOut(BaseModel):
    id: str
    kind: Literal["bridge", "frames"]
    label: str
    prompt: str | None = None
    position: float
    frames: int | None = None
    predicted: float
    current: float
    thumbnail_url: str | None = None
    cost: int | None = Field(None, description="frames its render computes at most, before probe reuse")
    probed: list[str] = Field([], description="frame keys the probe rendered: its render reuses them")


class AutofixOut(BaseModel):
    id: int
    transition_id: int
    kind: Literal["autopilot", "fix"]
    status: CancellableStatus
    phase: str = Field(description="what it is doing now, in words")
    rounds: list[RoundOut]
    stopped_because: str | None
    error: str | None = None
    frames_spent: int
    budget_frames: int | None
    max_rounds: int
    target_smoothness: float | None
    problem_id: str | None = None
    render_id: int | None = None
    proposals: list[ProposalOut] = []


def public_status(status: str) -> CancellableStatus:
    return Status.RUNNING if status == Status.WAITING else Status(status)  # type: ignore[return-value]


def autofix_out(row: Autofix) -> AutofixOut:
    return AutofixOut(
        id=row.id,
        transition_id=row.transition_id,
        kind=row.kind,  # type: ignore[arg-type]
        status=public_status(row.status),
        phase=row.phase,
        rounds=[RoundOut(**{k: r.get(k) for k in RoundOut.model_fields}) for r in row.rounds or []],
        stopped_because=row.stopped_because,
        error=row.error,
        frames_spent=row.frames_spent,
        budget_frames=row.budget_frames,
        max_rounds=row.max_rounds,
        target_smoothness=row.target_smoothness,
        problem_id=row.problem_id,
        render_id=row.render_id,
        proposals=[
            ProposalOut(
                **{k: p[k] for k in ProposalOut.model_fields if k != "thumbnail_url" and k in p},
                thumbnail_url=thumbnail_url(p),
            )
            for p in row.proposals or []
        ],
    )


def get_autofix(db: Session, autofix_id: int) -> Autofix:
    return found(db, Autofix, autofix_id, "autofix")


def active_autopilot(db: Session, transition_id: int) -> Autofix | None:
    return db.scalar(
        select(Autofix)
        .where(
            Autofix.transition_id == transition_id, Autofix.kind == "autopilot", Autofix.status.in_(ACTIVE)
        )
        .order_by(Autofix.id.desc())
    )


def latest(db: Session, transition_id: int, kind: str) -> Autofix | None:
    return db.scalar(
        select(Autofix)
        .where(Autofix.transition_id == transition_id, Autofix.kind == kind)
        .order_by(Autofix.id.desc())
    )


def _queue(db: Session, transition: Transition, kind: str, link_id: int | None, **fields: Any) -> Autofix:
    """A new run of `kind`, saved queued and sent to the workers (or failed: the queue is unreachable)."""
    row = Autofix(
        transition_id=transition.id,
        kind=kind,
        status=Status.QUEUED,
        link_id=link_id,
        rounds=[],
        proposals=[],
        **fields,
    )
    db.add(row)
    db.commit()
    return _send(db, row)


def _send(db: Session, row: Autofix) -> Autofix:
    def fail(reason: str) -> None:
        row.status, row.error, row.finished_at = Status.FAILED, reason, utcnow()
        row.stopped_because = QUEUE_AWAY
        db.commit()

    with sent_or_failed(f"autofix {row.id}", fail):
        send_autofix(row.id)
    return row


def default_budget(transition: Transition) -> int:
    """Two renders' worth: a bridge re-renders its whole segment, and its probes come on top (loop study)."""
    return BUDGET_RENDERS * transition.frames


def start_autopilot(
    db: Session, transition: Transition, data: AutofixCreate, link_id: int | None = None
) -> Autofix:
    """Queue an autopilot run; 409 when one is already under way on this transition."""
    running = active_autopilot(db, transition.id)
    if running is not None:
        raise Busy(
            f"autofix {running.id} is already {public_status(running.status)} on transition {transition.id}; "
            f"cancel it (POST /api/autofix/{running.id}/cancel) or wait for it to finish"
        )
    return _queue(
        db,
        transition,
        "autopilot",
        link_id,
        phase="queued: waits for a worker",
        max_rounds=data.max_rounds,
        budget_frames=data.budget_frames if data.budget_frames is not None else default_budget(transition),
        target_smoothness=data.target_smoothness,
    )


def request_fix(
    db: Session, transition: Transition, render: Render, problem_id: str, link_id: int | None = None
) -> Autofix:
    """Queue the proposals for one problem of a render (probed on a worker)."""
    from services.scores import render_problems

    if render.transition_id != transition.id:
        raise FieldError("render_id", f"render {render.id} is not a render of transition {transition.id}")
    known = [p.id for p in render_problems(db, render)]
    if problem_id not in known:
        listed = ", ".join(known[:8]) or "none"
        raise FieldError(
            "problem", f"render {render.id} has no problem '{problem_id}'; its problems: {listed}"
        )
    return _queue(
        db,
        transition,
        "fix",
        link_id,
        phase="queued: waits for a worker to probe fixes",
        max_rounds=1,
        problem_id=problem_id,
        render_id=render.id,
    )


def cancel(db: Session, row: Autofix) -> Autofix:
    """Stop a run between two steps; a round's render under way is cancelled (its edit stays, undoable)."""
    if row.status not in ACTIVE:
        raise FieldError(
            "status",
            f"autofix {row.id} is already {row.status}; only queued or running ones can be cancelled",
        )
    render = db.get(Render, row.render_id) if row.render_id and row.kind == "autopilot" else None
    row.status, row.finished_at = Status.CANCELLED, utcnow()
    row.stopped_because = "cancelled by a person"
    row.phase = "cancelled"
    row.lease_token = row.leased_until = None
    rounds = list(row.rounds or [])
    if rounds and rounds[-1].get("after") is None and rounds[-1].get("outcome") in (None, "applying"):
        rounds[-1] = {**rounds[-1], "outcome": "cancelled"}
        row.rounds = rounds
    db.commit()
    if render is not None and not render.is_finished:
        rendering.finish_render(db, render, Status.CANCELLED)
    db.refresh(row)
    return row


def find_proposal(row: Autofix, proposal_id: str) -> dict[str, Any]:
    for proposal in row.proposals or []:
        if proposal.get("id") == proposal_id:
            return dict(proposal)
    listed = ", ".join(p.get("id", "?") for p in row.proposals or []) or "none yet"
    raise FieldError("proposal", f"autofix {row.id} has no proposal '{proposal_id}'; its proposals: {listed}")


def apply_proposal(
    db: Session,
    transition: Transition,
    proposal: dict[str, Any],
    because: str,
    *,
    actor: Actor | None = None,
    expected: int | None = None,
) -> int:
    """Make the proposal's edit (one undoable edit whose history line names `because`); the new version."""
    if proposal["kind"] == "bridge":
        data = KeyframeCreate(position=float(proposal["position"]), prompt=str(proposal["prompt"]))
        transitions.add_keyframe(db, transition, data, expected=expected, actor=actor, because=because)
    elif proposal["kind"] == "frames":
        count = int(proposal["frames"])
        if count > caps().frames:
            raise FieldError("frames", f"this fix needs {count} frames; this server allows {caps().frames}")
        keyframe_id = proposal.get("keyframe_id")
        if keyframe_id is None:
            patch = TransitionUpdate.model_validate({"frames": count})
            transitions.update_transition(
                db, transition, patch, expected=expected, actor=actor, because=because
            )
        else:
            keyframe = transitions.get_keyframe(db, int(keyframe_id))
            transitions.update_keyframe(
                db,
                keyframe,
                KeyframeUpdate.model_validate({"frames": count}),
                expected=expected,
                actor=actor,
                because=because,
            )
    else:
        raise FieldError("proposal", f"unknown fix kind {proposal['kind']!r}")
    db.refresh(transition)
    return transition.version


def apply_fix(
    db: Session, row: Autofix, proposal_id: str, *, actor: Actor | None = None, link_id: int | None = None
) -> Render:
    """A person applies one of a Fix's proposals: the edit, then a render of only what it changed."""
    if row.kind != "fix" or row.status != Status.DONE:
        raise FieldError("proposal", f"autofix {row.id} has no proposals to apply (it is {row.status})")
    proposal = find_proposal(row, proposal_id)
    transition = transitions.get_transition(db, row.transition_id)
    because = f"fixes {describe_problem(row.problem_id)}"
    apply_proposal(db, transition, proposal, because, actor=actor)
    row.rounds = [
        {
            "problem": {"id": row.problem_id},
            "fix": proposal,
            "edit_version": transition.version,
            "before": None,
            "after": None,
            "outcome": "applied",
        }
    ]
    db.commit()
    probed = frozenset(proposal.get("probed", []))  # the probes are the fix's frames: reused, not rendered
    return rendering.start_render(db, transition, link_id=link_id, probed=probed)


def describe_problem(problem_id: str | None) -> str:
    """ "jump-9-10" as "the jump between #9 and #10"."""
    if not problem_id:
        return "a problem"
    kind, _, rest = problem_id.partition("-")
    a, _, b = rest.partition("-")
    if kind == "jump":
        return f"the jump between #{a} and #{b}"
    span = f"#{a}" if a == b else f"#{a}–#{b}"
    return {
        "backwards": f"going backwards at {span}",
        "neither": f"{span} matching neither prompt",
        "plateau": f"the plateau {span}",
    }.get(kind, problem_id)
