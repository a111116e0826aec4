"""Review notes (docs/notes.md): notes pinned to a moment t (or a range t..t_end) of a transition, with
replies and a status, announced on the transition's co-viewing channel so every viewer's list follows.

Who may do what is decided by the share link's role (app/deps.py): view links read; comment links add notes
and replies and correct the text and place of notes they wrote themselves; editors (owner, admin, edit links)
also resolve, reopen and delete. Every write checks its input before anything is written, in one commit.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from core.events import NoteChanged
from core.params import check_text
from infra.channels import announce
from infra.tables import Note, NoteReply, Transition
from services.errors import FieldError
from services.rows import found

#: The longest note or reply, and the longest author name (characters).
MAX_TEXT = 2000
MAX_AUTHOR = 80
#: The most notes on one transition, and the most replies to one note (a cap on a link holder's writes).
MAX_NOTES = 1000
MAX_REPLIES = 200
STATUSES = ("open", "resolved")
NoteStatus = Literal["open", "resolved"]


def _text(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise ValueError(f"text must not be empty: 1 to {MAX_TEXT} characters")
        if len(value) > MAX_TEXT:
            raise ValueError(f"text is at most {MAX_TEXT} characters (got {len(value)})")
        check_text("text", value)
    return value


def _author(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        value = " ".join(value.split())
        if len(value) > MAX_AUTHOR:
            raise ValueError(f"author is at most {MAX_AUTHOR} characters (got {len(value)})")
        check_text("author", value)
    return value


def _place(value: Any, info: ValidationInfo) -> Any:
    name = str(info.field_name)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and (not math.isfinite(value) or not 0 <= value <= 1):
        raise ValueError(f"{name} must be between 0 and 1 (the transition's start and end; got {value})")
    return value


#: A note's or reply's text, its author, and a place on the timeline: each checked as one type.
NoteText = Annotated[str, AfterValidator(_text)]
Author = Annotated[str, BeforeValidator(_author)]
Place = Annotated[float, AfterValidator(_place)]


def check_range(t: float, t_end: float | None) -> None:
    if t_end is not None and t_end < t:
        raise FieldError("t_end", f"t_end must be at least t ({t:g}) and at most 1; got {t_end:g}")


class NoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    t: Place = Field(description="where the note is pinned, 0 (start) to 1 (end)")
    t_end: Place | None = Field(None, description="the end of a range, t to 1; null: a single moment")
    text: NoteText = Field(description=f"1 to {MAX_TEXT} characters")
    author: Author = Field("", description=f"a free-text name, at most {MAX_AUTHOR} characters")


class NoteUpdate(BaseModel):
    """Only the fields given change; status needs an editor (owner or edit link)."""

    model_config = ConfigDict(extra="forbid")

    text: NoteText | None = Field(None, description=f"1 to {MAX_TEXT} characters")
    status: NoteStatus | None = None
    t: Place | None = Field(None, description="0 to 1")
    t_end: Place | None = Field(None, description="t to 1; null makes the note a single moment again")


class ReplyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: NoteText = Field(description=f"1 to {MAX_TEXT} characters")
    author: Author = Field("", description=f"at most {MAX_AUTHOR} characters")


class ReplyOut(BaseModel):
    id: int
    text: str
    author: str
    created_at: datetime


class NoteOut(BaseModel):
    id: int
    t: float
    t_end: float | None
    text: str
    author: str
    status: NoteStatus
    replies: list[ReplyOut]
    created_at: datetime


def note_out(note: Note) -> NoteOut:
    return NoteOut(
        id=note.id,
        t=note.t,
        t_end=note.t_end,
        text=note.text,
        author=note.author,
        status=note.status,  # type: ignore[arg-type]
        replies=[
            ReplyOut(id=r.id, text=r.text, author=r.author, created_at=r.created_at) for r in note.replies
        ],
        created_at=note.created_at,
    )


# ---------------------------------------------------------------- reading


def list_notes(db: Session, transition_id: int, status: str | None = None) -> list[Note]:
    """The notes of a transition in timeline order (then oldest first), with their replies."""
    query = select(Note).where(Note.transition_id == transition_id).options(selectinload(Note.replies))
    if status in STATUSES:
        query = query.where(Note.status == status)
    return list(db.scalars(query.order_by(Note.t, Note.id)))


def get_note(db: Session, note_id: int) -> Note:
    return found(db, Note, note_id, "note")


def note_transition(db: Session, note_id: int) -> int | None:
    """The transition a note belongs to (app.deps.TRANSITION_OF resolves `note_id` paths with it)."""
    return db.scalar(select(Note.transition_id).where(Note.id == note_id))


def counts(db: Session, transition_id: int) -> dict[str, int]:
    rows = db.execute(
        select(Note.status, func.count()).where(Note.transition_id == transition_id).group_by(Note.status)
    ).all()
    found = {status: int(n) for status, n in rows}
    return {status: found.get(status, 0) for status in STATUSES}


# ---------------------------------------------------------------- writing


def _announce(
    note: Note | None, transition_id: int, note_id: int, action: str, link_id: int | None, client: str | None
) -> None:
    announce(
        NoteChanged(
            transition_id=transition_id, note_id=note_id, action=action, link_id=link_id, client=client
        )
    )


def add_note(
    db: Session,
    transition: Transition,
    data: NoteCreate,
    link_id: int | None = None,
    client: str | None = None,
) -> Note:
    check_range(data.t, data.t_end)
    existing = db.scalar(select(func.count()).select_from(Note).where(Note.transition_id == transition.id))
    if (existing or 0) >= MAX_NOTES:
        raise FieldError("text", f"a transition holds at most {MAX_NOTES} notes; delete resolved ones first")
    note = Note(
        transition_id=transition.id,
        t=data.t,
        t_end=data.t_end,
        text=data.text,
        author=data.author,
        status="open",
        link_id=link_id,
    )
    db.add(note)
    db.commit()
    db.refresh(note)
    _announce(note, transition.id, note.id, "added", link_id, client)
    return note


def update_note(
    db: Session,
    note: Note,
    data: NoteUpdate,
    *,
    can_edit: bool,
    link_id: int | None = None,
    client: str | None = None,
) -> Note:
    """Change what `data` names. Raises PermissionError when the caller's role does not allow it."""
    given = data.model_fields_set
    if not can_edit:
        if "status" in given:
            raise PermissionError("a comment link cannot resolve or reopen notes; an editor can")
        if link_id is None or note.link_id != link_id:
            raise PermissionError("a comment link can change only the notes it wrote itself")
    for name in ("text", "t", "status"):
        if name in given and getattr(data, name) is None:
            raise FieldError(name, f"{name} cannot be null")
    t = data.t if "t" in given else note.t
    t_end = data.t_end if "t_end" in given else note.t_end
    assert t is not None
    check_range(t, t_end)
    if "text" in given:
        note.text = data.text  # type: ignore[assignment]
    if "status" in given:
        note.status = data.status  # type: ignore[assignment]
    note.t, note.t_end = t, t_end
    db.commit()
    db.refresh(note)
    _announce(note, note.transition_id, note.id, "updated", link_id, client)
    return note


def add_reply(
    db: Session, note: Note, data: ReplyCreate, link_id: int | None = None, client: str | None = None
) -> Note:
    if len(note.replies) >= MAX_REPLIES:
        raise FieldError("text", f"a note holds at most {MAX_REPLIES} replies")
    note.replies.append(NoteReply(text=data.text, author=data.author, link_id=link_id))
    db.commit()
    db.refresh(note)
    _announce(note, note.transition_id, note.id, "replied", link_id, client)
    return note


def delete_note(db: Session, note: Note, link_id: int | None = None, client: str | None = None) -> None:
    transition_id, note_id = note.transition_id, note.id
    db.delete(note)
    db.commit()
    _announce(None, transition_id, note_id, "deleted", link_id, client)


def replace_notes(db: Session, transition: Transition, notes: list[dict[str, Any]]) -> None:
    """Give a transition these notes (from a project file); the caller commits."""
    for entry in notes:
        note = Note(
            transition_id=transition.id,
            t=entry["t"],
            t_end=entry.get("t_end"),
            text=entry["text"],
            author=entry.get("author", ""),
            status=entry.get("status", "open"),
        )
        for reply in entry.get("replies", []):
            note.replies.append(NoteReply(text=reply["text"], author=reply.get("author", "")))
        db.add(note)


def notes_json(db: Session, transition_id: int) -> list[dict[str, Any]]:
    """The notes as the zip export's notes.json and the project file carry them (no ids, no links)."""
    return [
        {
            "t": n.t,
            "t_end": n.t_end,
            "text": n.text,
            "author": n.author,
            "status": n.status,
            "created_at": n.created_at.isoformat(),
            "replies": [
                {"text": r.text, "author": r.author, "created_at": r.created_at.isoformat()}
                for r in n.replies
            ],
        }
        for n in list_notes(db, transition_id)
    ]


__all__ = [
    "MAX_AUTHOR",
    "MAX_TEXT",
    "NoteCreate",
    "NoteOut",
    "NoteUpdate",
    "ReplyCreate",
    "add_note",
    "add_reply",
    "delete_note",
    "get_note",
    "list_notes",
    "note_out",
    "update_note",
]
