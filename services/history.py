"""The edit history of a transition: every change as a row, undo, redo, jump back, and race-safe versions.

Every write to a transition or its keyframes goes through `edit`:

1. it claims the next version with one atomic statement in the edit's own database transaction:
   `UPDATE transitions SET version = version + 1 WHERE id = :id AND version = :expected` when the client
   named the version it saw (no row: 409 `Conflict`), or without the `version = :expected` test when it did
   not (scripts). The row lock (PostgreSQL) or the write lock (SQLite) this takes serializes the edits of a
   transition until commit, so nothing read after it is stale and no two edits get the same version;
2. it snapshots the transition (settings and keyframes), applies the change, snapshots again and stores
   the difference as `before` / `after` on the Edit row, with who made it (the share link, or null for the
   owner);
3. it commits, then announces the new version on the transition's co-viewing channel.

A snapshot is a document (core/history.py: its shape, diff, apply and summary, pure). Undo applies the
undone edit's `before`, redo its `after`; both are edits themselves, so nothing is ever lost. History is
linear: undo always takes back the newest edit not yet undone (whoever made it), so the entities it touched
are exactly as it left them and its inverse applies cleanly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.events import TransitionChanged
from core.history import REDO, REVERT, UNDO, Doc, apply_to_doc, diff, summarize
from core.params import MAX_ID
from infra.channels import announce
from infra.tables import Edit, Keyframe, ShareLink, Transition, utcnow
from services.errors import FieldError, NotFound

#: Columns that are bookkeeping, not content: never part of a snapshot, never undone.
_TRANSITION_SKIP = {"id", "version", "created_at", "updated_at"}
_KEYFRAME_SKIP = {"id", "transition_id", "created_at"}
_PLAIN = (str, int, float, bool, type(None), list, dict)


@dataclass(frozen=True)
class Actor:
    """Who writes: the share link used (None: the owner or the admin) and the page that sent the request."""

    link_id: int | None = None
    client: str | None = None


OWNER = Actor()


class Conflict(Exception):
    """A write based on a version that is no longer the newest: 409 with what changed meanwhile."""

    def __init__(self, transition_id: int, expected: int, current: int, changes: list[str]) -> None:
        self.transition_id = transition_id
        self.expected = expected
        self.current = current
        self.changes = changes
        what = "; ".join(changes) if changes else "the transition changed"
        super().__init__(
            f"your change was based on version {expected}, but the transition is now at version {current}. "
            f"Changed meanwhile: {what}. Nothing was saved; look at the current state and try again."
        )


# ---------------------------------------------------------------- snapshots and changes


def _columns(table: type, skip: set[str]) -> list[str]:
    return [attr.key for attr in table.__mapper__.column_attrs if attr.key not in skip]  # type: ignore[attr-defined]


def transition_fields() -> list[str]:
    return _columns(Transition, _TRANSITION_SKIP)


def keyframe_fields() -> list[str]:
    return _columns(Keyframe, _KEYFRAME_SKIP)


def _values(row: Any, names: Iterable[str]) -> dict[str, Any]:
    out = {}
    for name in names:
        value = getattr(row, name)
        if isinstance(value, _PLAIN):
            out[name] = value
    return out


def snapshot(transition: Transition) -> Doc:
    """Everything an edit can change, as plain JSON values."""
    return {
        "transition": _values(transition, transition_fields()),
        "keyframes": {str(k.id): _values(k, keyframe_fields()) for k in transition.keyframes},
    }


def apply(db: Session, transition: Transition, change: Doc) -> None:
    """Make the stored transition match a change: set fields, delete, move and re-create keyframes.

    Keyframes are deleted first and moved ones parked outside [0, 1] before taking their final places, so
    the (transition, position) uniqueness holds at every statement, whatever order a change moves them in.
    """
    allowed_t, allowed_k = set(transition_fields()), set(keyframe_fields())
    for name, value in change.get("transition", {}).items():
        if name in allowed_t:
            setattr(transition, name, value)
    wanted = change.get("keyframes", {})
    existing = {str(k.id): k for k in transition.keyframes}
    removed = [existing.pop(kid) for kid, values in wanted.items() if values is None and kid in existing]
    for keyframe in removed:
        transition.keyframes.remove(keyframe)
    if removed:
        db.flush()
    moving = [
        existing[kid]
        for kid, values in wanted.items()
        if values is not None
        and kid in existing
        and "position" in values
        and values["position"] != existing[kid].position
    ]
    for parked, keyframe in enumerate(moving, start=1):
        keyframe.position = -float(parked)
    if moving:
        db.flush()
    for kid, values in wanted.items():
        if values is None:
            continue
        fields = {name: value for name, value in values.items() if name in allowed_k}
        if kid in existing:
            for name, value in fields.items():
                setattr(existing[kid], name, value)
        else:
            if db.get(Keyframe, int(kid)) is not None:  # ids are never reused; a broken database otherwise
                raise FieldError("keyframe", f"keyframe id {kid} is taken; this step cannot be undone")
            transition.keyframes.append(Keyframe(id=int(kid), **fields))
    db.flush()
    db.expire(transition, ["keyframes"])


# ---------------------------------------------------------------- describing edits


def describe(edit: Edit) -> str:
    summary = (edit.payload or {}).get("summary")
    if summary:
        return str(summary)
    if edit.kind == "create":
        return "created"
    return edit.kind.replace("_", " ")


# ---------------------------------------------------------------- writing an edit


@dataclass
class Outcome:
    """What a change function tells `edit` beyond the change itself."""

    payload: dict[str, Any] = field(default_factory=dict)
    target_id: int | None = None
    summary: str | None = None
    record_empty: bool = False


def _claim(db: Session, transition_id: int, expected: int | None) -> int:
    """Take the next version atomically; the lock it takes holds until this transaction ends."""
    if expected is not None and not 1 <= expected <= MAX_ID:  # the database's column could not hold it
        raise FieldError("version", f"version must be a transition version, 1 to {MAX_ID} (got {expected})")
    now = utcnow()
    statement = update(Transition).where(Transition.id == transition_id)
    if expected is not None:
        statement = statement.where(Transition.version == expected)
    new = db.execute(
        statement.values(version=Transition.version + 1, updated_at=now).returning(Transition.version)
    ).scalar_one_or_none()
    if new is None:
        db.rollback()
        if db.get(Transition, transition_id) is None:
            raise NotFound("transition", transition_id)
        assert expected is not None
        raise conflict(db, transition_id, expected)
    return int(new)


def conflict(db: Session, transition_id: int, expected: int) -> Conflict:
    current = db.scalar(select(Transition.version).where(Transition.id == transition_id)) or expected
    newer = db.scalars(
        select(Edit)
        .where(Edit.transition_id == transition_id, Edit.version > expected)
        .order_by(Edit.version)
        .limit(20)
    ).all()
    links = _link_roles(db, [e.link_id for e in newer])
    changes = [f"v{e.version} {describe(e)} ({who(e.link_id, links)})" for e in newer]
    return Conflict(transition_id, expected, current, changes)


def edit(
    db: Session,
    transition: Transition,
    kind: str,
    change: Callable[[], Outcome | None],
    *,
    expected: int | None = None,
    actor: Actor | None = None,
    because: str | None = None,
) -> Edit | None:
    """Run `change` (which mutates the rows, or raises FieldError/NotFound) as one recorded edit.

    Returns the Edit, or None when the change changed nothing (nothing is recorded, the version stays).
    `because`: why it was made (the problem a fix answers), appended to the history's summary.
    """
    actor = actor or OWNER
    transition_id = transition.id
    version = _claim(db, transition_id, expected)
    try:
        # Under the lock: re-read everything, the rows loaded before may predate a concurrent edit.
        db.expire_all()
        before_doc = snapshot(transition)
        outcome = change() or Outcome()
        db.flush()
        db.expire(transition, ["keyframes"])
        after_doc = snapshot(transition)
    except BaseException:
        db.rollback()
        raise
    before, after = diff(before_doc, after_doc)
    if not before and not after and not outcome.record_empty:
        db.rollback()  # gives the claimed version back
        return None
    summary = outcome.summary or summarize(before, after, before_doc)
    if because:
        summary = f"{summary} — {because}"
    row = Edit(
        transition_id=transition_id,
        version=version,
        kind=kind,
        payload={**outcome.payload, "summary": summary},
        link_id=actor.link_id,
        before=before,
        after=after,
        target_id=outcome.target_id,
    )
    db.add(row)
    db.commit()
    announce(
        TransitionChanged(
            transition_id=transition_id,
            version=version,
            kind=kind,
            summary=summary,
            link_id=actor.link_id,
            client=actor.client,
        )
    )
    return row


# ---------------------------------------------------------------- undo, redo, jump back


@dataclass
class Stacks:
    undo: list[int]  # edit ids, newest last
    redo: list[int]


def stacks(db: Session, transition_id: int) -> Stacks:
    """Replay the history's moves: normal edits push on undo (and clear redo); undo and redo move one."""
    rows = db.execute(
        select(Edit.id, Edit.kind, Edit.target_id, Edit.before.is_(None))
        .where(Edit.transition_id == transition_id)
        .order_by(Edit.version)
    ).all()
    undo: list[int] = []
    redo: list[int] = []
    for edit_id, kind, target_id, legacy in rows:
        if kind == UNDO and target_id is not None:
            if target_id in undo:
                undo.remove(target_id)
            redo.append(target_id)
        elif kind == REDO and target_id is not None:
            if target_id in redo:
                redo.remove(target_id)
            undo.append(target_id)
        elif legacy:  # creation, or a row from before the history: nothing before it can be undone
            undo.clear()
            redo.clear()
        else:
            undo.append(edit_id)
            redo.clear()
    return Stacks(undo, redo)


def undo(
    db: Session, transition: Transition, *, expected: int | None = None, actor: Actor | None = None
) -> Edit:
    return _step(db, transition, UNDO, expected=expected, actor=actor)


def redo(
    db: Session, transition: Transition, *, expected: int | None = None, actor: Actor | None = None
) -> Edit:
    return _step(db, transition, REDO, expected=expected, actor=actor)


#: What undo and redo say when their stack is empty.
NOTHING_TO = {
    UNDO: "nothing to undo: every edit since the transition was created is undone",
    REDO: "nothing to redo: redo repeats an undone edit, and none is waiting",
}


def _step(
    db: Session, transition: Transition, kind: str, *, expected: int | None, actor: Actor | None
) -> Edit:
    """Undo (put back the newest undoable edit's `before`) or redo (the newest undone edit's `after`)."""

    def change() -> Outcome:
        pending = stacks(db, transition.id).undo if kind == UNDO else stacks(db, transition.id).redo
        if not pending:
            raise FieldError("history", NOTHING_TO[kind])
        target = db.get(Edit, pending[-1])
        assert target is not None
        doc = target.before if kind == UNDO else target.after
        assert doc is not None
        apply(db, transition, doc)
        return Outcome(
            payload={"of_version": target.version},
            target_id=target.id,
            summary=f"{kind} v{target.version}: {describe(target)}",
            record_empty=True,
        )

    result = edit(db, transition, kind, change, expected=expected, actor=actor)
    assert result is not None
    return result


def state_at(db: Session, transition: Transition, version: int, latest: int | None = None) -> Doc:
    """The snapshot the transition had at `version`: today's, with every later change taken back.

    `latest`: the newest recorded version (inside an edit the transition already holds the claimed one)."""
    latest = transition.version if latest is None else latest
    if not 1 <= version <= latest:
        raise FieldError("to_version", f"to_version must be between 1 and {latest} (got {version})")
    doc = snapshot(transition)
    later = db.scalars(
        select(Edit)
        .where(Edit.transition_id == transition.id, Edit.version > version)
        .order_by(Edit.version.desc())
    ).all()
    for row in later:
        if row.before is None:
            raise FieldError(
                "to_version",
                f"version {version} cannot be restored: version {row.version} was saved before Segue kept "
                "the history needed to take it back",
            )
        doc = apply_to_doc(doc, row.before)
    return doc


def revert(
    db: Session,
    transition: Transition,
    to_version: int,
    *,
    expected: int | None = None,
    actor: Actor | None = None,
) -> Edit | None:
    """Jump back: make the transition what it was at `to_version`, as one new (undoable) edit."""

    def change() -> Outcome:
        target = state_at(db, transition, to_version, latest=transition.version - 1)
        _before, after = diff(snapshot(transition), target)
        apply(db, transition, after)
        return Outcome(payload={"to_version": to_version}, summary=f"back to version {to_version}")

    return edit(db, transition, REVERT, change, expected=expected, actor=actor)


# ---------------------------------------------------------------- reading the history


def _link_roles(db: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(db.execute(select(ShareLink.id, ShareLink.role).where(ShareLink.id.in_(wanted))).all())


def who(link_id: int | None, roles: dict[int, str]) -> str:
    if link_id is None:
        return "owner"
    return f"{roles.get(link_id, 'share')} link #{link_id}"


@dataclass
class Entry:
    id: int
    version: int
    kind: str
    summary: str
    who: str
    link_id: int | None
    created_at: datetime
    undone: bool
    restorable: bool


@dataclass
class Panel:
    entries: list[Entry]
    can_undo: bool
    can_redo: bool
    undo_summary: str | None
    redo_summary: str | None


def entries(db: Session, transition: Transition, limit: int | None = None) -> list[Entry]:
    """Newest first: what each edit did, who made it, whether it is undone, whether one can jump back."""
    query = select(Edit).where(Edit.transition_id == transition.id).order_by(Edit.version.desc())
    rows = list(db.scalars(query if limit is None else query.limit(limit)))
    roles = _link_roles(db, [r.link_id for r in rows])
    pending_redo = set(stacks(db, transition.id).redo)
    # Jumping back to a version needs every later edit to carry its `before`.
    restorable_from = 1
    for row in db.execute(
        select(Edit.version).where(
            Edit.transition_id == transition.id, Edit.before.is_(None), Edit.version > 1
        )
    ).scalars():
        restorable_from = max(restorable_from, row)
    return [
        Entry(
            id=r.id,
            version=r.version,
            kind=r.kind,
            summary=describe(r),
            who=who(r.link_id, roles),
            link_id=r.link_id,
            created_at=r.created_at,
            undone=r.id in pending_redo,
            restorable=r.version >= restorable_from and r.version != transition.version,
        )
        for r in rows
    ]


def panel(db: Session, transition: Transition, limit: int = 50) -> Panel:
    moves = stacks(db, transition.id)
    undo_row = db.get(Edit, moves.undo[-1]) if moves.undo else None
    redo_row = db.get(Edit, moves.redo[-1]) if moves.redo else None
    return Panel(
        entries=entries(db, transition, limit),
        can_undo=undo_row is not None,
        can_redo=redo_row is not None,
        undo_summary=f"v{undo_row.version}: {describe(undo_row)}" if undo_row else None,
        redo_summary=f"v{redo_row.version}: {describe(redo_row)}" if redo_row else None,
    )
