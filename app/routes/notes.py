"""Review notes (docs/notes.md): the API, and the Notes card's fragments on the transition page.

Roles (app/deps.py): GETs are open to every link of the transition; adding a note or a reply is
`commenters_may` (comment and edit links, the owner); PATCH is `commenters_may` too but the service lets a
comment link change only its own notes' text and place, never a status; DELETE and the page's resolve and
delete forms are ordinary writes (editors only), refused to view and comment links by app.deps.enforce_access.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from app.deps import TRANSITION_OF, AccessDenied, AccessDep, Id, SessionDep, commenters_may
from app.errors import form_errors
from app.templating import templates
from core.timecode import format_time
from infra.tables import Note, Transition
from services import notes, timing
from services.errors import FieldError
from services.transitions import get_transition

TRANSITION_OF["note_id"] = notes.note_transition

router = APIRouter(tags=["notes"])
pages = APIRouter(include_in_schema=False)


def _denied(exc: PermissionError) -> AccessDenied:
    return AccessDenied(403, str(exc))


@router.get("/api/transitions/{transition_id}/notes", response_model=list[notes.NoteOut])
def list_notes(
    transition_id: Id, db: SessionDep, status: notes.NoteStatus | None = Query(None)
) -> list[notes.NoteOut]:
    """The transition's review notes in timeline order, each with its replies (`status` filters)."""
    get_transition(db, transition_id)
    return [notes.note_out(n) for n in notes.list_notes(db, transition_id, status)]


@router.post(
    "/api/transitions/{transition_id}/notes",
    response_model=notes.NoteOut,
    status_code=status.HTTP_201_CREATED,
)
@commenters_may
def create_note(
    transition_id: Id, data: notes.NoteCreate, db: SessionDep, access: AccessDep
) -> notes.NoteOut:
    """Pin a note to t (0 to 1) or to the range t..t_end. Comment and edit links may; view links get 403."""
    transition = get_transition(db, transition_id)
    note = notes.add_note(db, transition, data, access.link_id, access.client)
    return notes.note_out(note)


@router.patch("/api/notes/{note_id}", response_model=notes.NoteOut)
@commenters_may
def update_note(note_id: Id, data: notes.NoteUpdate, db: SessionDep, access: AccessDep) -> notes.NoteOut:
    """Change text, t, t_end or status. Resolving or reopening (status) needs an editor; a comment link may
    correct the text and place of notes it wrote itself."""
    note = notes.get_note(db, note_id)
    try:
        notes.update_note(
            db, note, data, can_edit=access.can_edit, link_id=access.link_id, client=access.client
        )
    except PermissionError as exc:
        raise _denied(exc) from None
    return notes.note_out(note)


@router.delete("/api/notes/{note_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_note(note_id: Id, db: SessionDep, access: AccessDep) -> Response:
    """Delete a note and its replies (editors only)."""
    notes.delete_note(db, notes.get_note(db, note_id), access.link_id, access.client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api/notes/{note_id}/replies", response_model=notes.NoteOut, status_code=status.HTTP_201_CREATED
)
@commenters_may
def reply(note_id: Id, data: notes.ReplyCreate, db: SessionDep, access: AccessDep) -> notes.NoteOut:
    """Reply to a note; the answer is the note with all its replies."""
    note = notes.add_reply(db, notes.get_note(db, note_id), data, access.link_id, access.client)
    return notes.note_out(note)


# ---------------------------------------------------------------- the Notes card (partials/notes.html)

SHOWN = ("open", "resolved", "all")


def _shown(value: Any) -> str:
    value = str(value or "open")
    return value if value in SHOWN else "open"


def notes_context(db: Any, transition: Transition, shown: str = "open", **extra: Any) -> dict[str, Any]:
    """What partials/notes.html needs (the transition page passes the same through `notes_context`)."""
    return {
        "t": transition,
        "notes_shown": shown,
        "notes_list": notes.list_notes(db, transition.id, None if shown == "all" else shown),
        "notes_counts": notes.counts(db, transition.id),
        "notes_clock": timing.clock(transition),
        "format_time": format_time,
        "note_errors": {},
        "note_values": {},
        "reply_errors": {},
        "max_note_text": notes.MAX_TEXT,
        **extra,
    }


def _fragment(request: Request, name: str, context: dict[str, Any], code: int = 200) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=code)


@pages.get("/transitions/{transition_id}/notes", response_class=HTMLResponse)
def notes_card(
    request: Request, transition_id: Id, db: SessionDep, show: str = "open", part: str = ""
) -> Response:
    """The Notes card, or (part=list) only its live part: the filter, the marker bar and the list."""
    context = notes_context(db, get_transition(db, transition_id), _shown(show))
    name = "partials/notes_live.html" if part == "list" else "partials/notes.html"
    return _fragment(request, name, context)


@pages.post("/transitions/{transition_id}/notes", response_class=HTMLResponse)
@commenters_may
async def add_note_form(request: Request, transition_id: Id, db: SessionDep, access: AccessDep) -> Response:
    transition = get_transition(db, transition_id)
    form = await request.form()
    values = {k: str(form.get(k) or "").strip() for k in ("t", "t_end", "text", "author")}
    shown = _shown(form.get("show"))
    try:
        data = notes.NoteCreate.model_validate(
            {
                "t": values["t"] or None,
                "t_end": values["t_end"] or None,
                "text": values["text"],
                "author": values["author"],
            }
        )
        notes.add_note(db, transition, data, access.link_id, access.client)
    except ValidationError as exc:
        context = notes_context(
            db,
            transition,
            shown,
            note_errors=form_errors([dict(e) for e in exc.errors()]),
            note_values=values,
        )
        return _fragment(request, "partials/notes.html", context, 422)
    except FieldError as exc:
        context = notes_context(
            db, transition, shown, note_errors={exc.field: exc.message}, note_values=values
        )
        return _fragment(request, "partials/notes.html", context, 422)
    context = notes_context(db, transition, shown, note_values={"author": values["author"]}, note_added=True)
    return _fragment(request, "partials/notes.html", context)


def _live(request: Request, db: Any, note: Note | int, shown: str, code: int = 200, **extra: Any) -> Response:
    transition_id = note if isinstance(note, int) else note.transition_id
    context = notes_context(db, get_transition(db, transition_id), shown, **extra)
    return _fragment(request, "partials/notes_live.html", context, code)


@pages.post("/notes/{note_id}/replies", response_class=HTMLResponse)
@commenters_may
async def reply_form(request: Request, note_id: Id, db: SessionDep, access: AccessDep) -> Response:
    note = notes.get_note(db, note_id)
    form = await request.form()
    shown = _shown(form.get("show"))
    try:
        data = notes.ReplyCreate.model_validate(
            {"text": str(form.get("text") or ""), "author": str(form.get("author") or "")}
        )
        notes.add_reply(db, note, data, access.link_id, access.client)
    except ValidationError as exc:
        return _live(
            request,
            db,
            note,
            shown,
            422,
            reply_errors={note.id: form_errors([dict(e) for e in exc.errors()]).get("text")},
        )
    except FieldError as exc:
        return _live(request, db, note, shown, 422, reply_errors={note.id: exc.message})
    return _live(request, db, note, shown)


@pages.post("/notes/{note_id}/status", response_class=HTMLResponse)
async def status_form(request: Request, note_id: Id, db: SessionDep, access: AccessDep) -> Response:
    """Resolve or reopen (editors only: enforce_access refuses view and comment links)."""
    note = notes.get_note(db, note_id)
    form = await request.form()
    wanted = str(form.get("status") or "")
    if wanted not in notes.STATUSES:  # shown on the note, like a reply's error (never the JSON 422)
        message = f"status must be one of: {', '.join(notes.STATUSES)} (got {wanted[:40]!r})"
        return _live(request, db, note, _shown(form.get("show")), 422, reply_errors={note.id: message})
    data = notes.NoteUpdate.model_validate({"status": wanted})
    notes.update_note(db, note, data, can_edit=access.can_edit, link_id=access.link_id, client=access.client)
    return _live(request, db, note, _shown(form.get("show")))


@pages.post("/notes/{note_id}/delete", response_class=HTMLResponse)
async def delete_form(request: Request, note_id: Id, db: SessionDep, access: AccessDep) -> Response:
    note = notes.get_note(db, note_id)
    form = await request.form()
    transition_id = note.transition_id
    notes.delete_note(db, note, access.link_id, access.client)
    return _live(request, db, transition_id, _shown(form.get("show")))
