"""The editor's keyframe rows: add, edit, delete a keyframe, and the switch step search its row polls."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from app.deps import AccessDep, Id, SessionDep, form_version
from app.routes.pages.editor import conflict_response, timeline_response
from app.routes.pages.forms import as_typed, cleared, concepts_form, errors_of, form_values, time_forms
from app.templating import templates
from core.params import KEYFRAME_FIELDS
from services import moce, transitions
from services.errors import FieldError
from services.history import Conflict
from services.schemas import KeyframeCreate, KeyframeUpdate

router = APIRouter()


@router.post("/transitions/{transition_id}/keyframes", response_class=HTMLResponse)
async def add_keyframe(request: Request, transition_id: Id, db: SessionDep, access: AccessDep) -> Response:
    transition = transitions.get_transition(db, transition_id)
    values = time_forms(await form_values(request, KeyframeCreate))
    try:
        data = KeyframeCreate(**values)
        transitions.add_keyframe(db, transition, data, expected=data.version, actor=access.actor)
    except Conflict as exc:
        return conflict_response(request, db, exc)
    except ValidationError as exc:
        return timeline_response(request, db, transition, *as_typed(values, errors_of(exc)))
    except FieldError as exc:
        return timeline_response(request, db, transition, *as_typed(values, {exc.field: exc.message}))
    return timeline_response(request, db, transition)


@router.post("/keyframes/{keyframe_id}", response_class=HTMLResponse)
async def edit_keyframe(request: Request, keyframe_id: Id, db: SessionDep, access: AccessDep) -> Response:
    keyframe = transitions.get_keyframe(db, keyframe_id)
    transition = keyframe.transition
    values = time_forms(await form_values(request, KeyframeUpdate))
    form = await request.form()
    emptied = cleared(form, KEYFRAME_FIELDS)  # an emptied seed, frames, ... goes back to "not set"
    concepts, concept_values = concepts_form(form)  # MoCE: concepts.on, concepts.first, ...
    values.update(concept_values)
    try:
        given = {k: v for k, v in values.items() if not k.startswith("concepts.")}
        patch = KeyframeUpdate(**given, **emptied, **concepts)
        transitions.update_keyframe(db, keyframe, patch, expected=patch.version, actor=access.actor)
    except Conflict as exc:
        return conflict_response(request, db, exc)
    except (ValidationError, FieldError) as exc:
        errors = errors_of(exc) if isinstance(exc, ValidationError) else {exc.field: exc.message}
        typed, shown = as_typed(values, errors)
        return timeline_response(
            request,
            db,
            transition,
            {f"{keyframe_id}.{k}": v for k, v in typed.items()},
            {f"{keyframe_id}.{k}": v for k, v in shown.items()},
        )
    return timeline_response(request, db, transition)


@router.get("/keyframes/{keyframe_id}/concepts", response_class=HTMLResponse)
def keyframe_concepts(request: Request, keyframe_id: Id, db: SessionDep) -> Response:
    """The switch step search of a keyframe's sequential concepts: the fragment its row polls."""
    keyframe = transitions.get_keyframe(db, keyframe_id)
    context = {"moce_status_only": True, "panel": moce.panel_context(db, keyframe)}
    return templates.TemplateResponse(request, "partials/keyframe_concepts.html", context)


@router.post("/keyframes/{keyframe_id}/delete", response_class=HTMLResponse)
async def remove_keyframe(request: Request, keyframe_id: Id, db: SessionDep, access: AccessDep) -> Response:
    keyframe = transitions.get_keyframe(db, keyframe_id)
    transition = keyframe.transition
    version = (await request.form()).get("version")
    try:
        expected = form_version(version)
        transitions.delete_keyframe(db, keyframe, expected=expected, actor=access.actor)
    except Conflict as exc:
        return conflict_response(request, db, exc)
    except FieldError as exc:
        return timeline_response(request, db, transition, {}, {f"{keyframe_id}.keyframe": exc.message})
    return timeline_response(request, db, transition)
