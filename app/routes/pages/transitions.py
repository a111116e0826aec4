"""The transition pages: the new-transition form, the editor and its settings, deleting a transition."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.deps import AccessDep, Id, QueryId, SessionDep, owner_only
from app.htmx import go_to, is_htmx, page_or_blocks
from app.routes.pages.editor import EDITOR, chosen_render, conflict_response, editor_context
from app.routes.pages.forms import cleared, errors_of, form_values
from app.templating import settings_context, templates
from core.params import NULLABLE_SETTINGS
from services import transitions
from services.history import Conflict
from services.schemas import TransitionCreate, TransitionUpdate

router = APIRouter()


@router.get("/transitions/new", response_class=HTMLResponse)
def new_transition(request: Request) -> Response:
    return templates.TemplateResponse(
        request, "pages/new.html", {"values": {}, "errors": {}, **settings_context()}
    )


@router.post("/transitions", response_class=HTMLResponse)
async def create_transition(request: Request, db: SessionDep) -> Response:
    values = await form_values(request, TransitionCreate)
    try:
        data = TransitionCreate(**values)
    except ValidationError as exc:
        context = {"values": values, "errors": errors_of(exc), **settings_context()}
        return page_or_blocks(request, "pages/new.html", context, ["form"], 422)
    transition = transitions.create_transition(db, data)
    return go_to(request, f"/transitions/{transition.id}")


@router.get("/transitions/{transition_id}", response_class=HTMLResponse)
def editor(request: Request, transition_id: Id, db: SessionDep, render: QueryId | None = None) -> Response:
    transition = transitions.get_transition(db, transition_id)
    chosen = chosen_render(db, transition, render)
    return templates.TemplateResponse(request, EDITOR, editor_context(db, transition, chosen))


@router.post("/transitions/{transition_id}/settings", response_class=HTMLResponse)
async def save_settings(request: Request, transition_id: Id, db: SessionDep, access: AccessDep) -> Response:
    transition = transitions.get_transition(db, transition_id)
    values = await form_values(request, TransitionUpdate)
    context = editor_context(db, transition)
    version = transition.version
    # An emptied spacing budget or shared step goes back to its default.
    emptied = cleared(await request.form(), NULLABLE_SETTINGS)
    try:
        patch = TransitionUpdate(**values, **emptied)
        transitions.update_transition(db, transition, patch, expected=patch.version, actor=access.actor)
    except Conflict as exc:
        return conflict_response(request, db, exc)
    except ValidationError as exc:
        context.update(values=values, errors=errors_of(exc))
        return page_or_blocks(request, EDITOR, context, ["settings"], 422)
    if not is_htmx(request):
        return RedirectResponse(f"/transitions/{transition.id}", status_code=303)
    context = editor_context(db, transition)
    context.update(saved=transition.version != version, unchanged=transition.version == version, oob=True)
    return page_or_blocks(request, EDITOR, context, ["settings", "timeline", "header", "history"])


@router.post("/transitions/{transition_id}/delete")
@owner_only
def remove_transition(request: Request, transition_id: Id, db: SessionDep) -> Response:
    transitions.delete_transition(db, transitions.get_transition(db, transition_id))
    return go_to(request, "/")
