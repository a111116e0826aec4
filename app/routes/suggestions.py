"""Suggested bridges: the JSON API and the editor's panel (templates/partials/suggestions.html)."""

from __future__ import annotations

import math
from typing import Any, Literal

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from app.deps import TRANSITION_OF, Id, Index, SessionDep
from app.errors import form_errors
from app.htmx import is_htmx
from app.templating import templates
from infra.tables import Suggestion, Transition
from services import suggestions as services
from services import transitions as transition_services
from services.errors import BrokerUnavailable, FieldError

router = APIRouter(prefix="/api", tags=["suggestions"])
pages = APIRouter(include_in_schema=False)

# A share link may follow the suggestions of its own transition.
TRANSITION_OF.setdefault(
    "suggestion_id",
    lambda db, ident: db.scalar(select(Suggestion.transition_id).where(Suggestion.id == ident)),
)


@router.post(
    "/transitions/{transition_id}/suggestions",
    response_model=services.SuggestionStarted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={422: {"description": "the keyframe does not start a segment of this transition"}},
)
def create_suggestions(
    transition_id: Id, db: SessionDep, data: services.SuggestionCreate | None = None
) -> services.SuggestionStarted:
    """Ask for suggested intermediate prompts; a worker writes, probes and ranks them.

    `bridge` (default): `count` suggestions (default 3) for the segment starting at `after_keyframe_id`
    (default: the widest segment), evenly spaced in it. `storyboard`: a chain of `count` keyframes from
    the start prompt to the end prompt. Follow with `GET /api/suggestions/{id}`.
    """
    transition = transition_services.get_transition(db, transition_id)
    row = services.request_suggestions(db, transition, data or services.SuggestionCreate())
    return services.SuggestionStarted(id=row.id, status=row.status)  # type: ignore[arg-type]


@router.get("/suggestions/{suggestion_id}", response_model=services.SuggestionOut)
def get_suggestions(suggestion_id: Id, db: SessionDep) -> services.SuggestionOut:
    """The suggestions so far, best first (a storyboard: in order along the timeline); items appear while
    the worker ranks them. Accept one with `POST /api/transitions/{id}/keyframes` `{position, prompt}`."""
    return services.suggestion_out(services.get_suggestion(db, suggestion_id))


# ---------------------------------------------------------------- the editor's panel (htmx)


def _context(transition: Transition, run: Suggestion | None, **extra: Any) -> dict[str, Any]:
    items = (
        [
            {**item, "index": i, "thumbnail_url": services.thumbnail_url(item)}
            for i, item in enumerate(run.items or [])
        ]
        if run is not None
        else []
    )
    return {
        "t": transition,
        "sg_run": run,
        "sg_items": items,
        "sg_error": None,
        "done": run is not None and run.status in services.FINISHED,
        "max_count": services.MAX_COUNT,
        "default_count": services.DEFAULT_COUNT,
        **extra,
    }


def _block(request: Request, block: str, context: dict[str, Any], status_code: int = 200) -> Response:
    return templates.TemplateResponse(
        request, "partials/suggestions.html", context, block_name=block, status_code=status_code
    )


@pages.get("/transitions/{transition_id}/suggestions/latest", response_class=HTMLResponse)
def latest(request: Request, transition_id: Id, db: SessionDep) -> Response:
    """The latest suggestions of this transition (the panel loads them when the editor opens)."""
    transition = transition_services.get_transition(db, transition_id)
    return _block(request, "run", _context(transition, services.latest_suggestion(db, transition.id)))


@pages.get("/transitions/{transition_id}/suggestions/segments", response_class=HTMLResponse)
def segments(request: Request, transition_id: Id, db: SessionDep) -> Response:
    transition = transition_services.get_transition(db, transition_id)
    return _block(request, "segments", _context(transition, None))


@pages.post("/transitions/{transition_id}/suggestions", response_class=HTMLResponse)
async def ask(request: Request, transition_id: Id, db: SessionDep) -> Response:
    """The panel's buttons and a flagged frame's "suggest bridges here" (with `position`)."""
    transition = transition_services.get_transition(db, transition_id)
    form = await request.form()
    values = {
        k: v
        for k, v in form.items()
        if isinstance(v, str) and v.strip() and k in ("after_keyframe_id", "count", "mode")
    }
    position: float | None = None
    error = None
    try:
        raw = form.get("position")
        if isinstance(raw, str) and raw.strip():
            position = float(raw)
            if not math.isfinite(position):
                raise FieldError("position", "position must be a number between 0 and 1")
        data = services.SuggestionCreate.model_validate(values)
        run: Suggestion | None = services.request_suggestions(db, transition, data, position=position)
    except ValidationError as exc:
        error = "; ".join(form_errors(list(exc.errors())).values())  # type: ignore[arg-type]
        run = services.latest_suggestion(db, transition.id)
    except ValueError:
        error = "position must be a number between 0 and 1"
        run = services.latest_suggestion(db, transition.id)
    except (FieldError, BrokerUnavailable) as exc:
        error = getattr(exc, "message", None) or str(exc)
        run = services.latest_suggestion(db, transition.id)
    if not is_htmx(request):
        return RedirectResponse(f"/transitions/{transition.id}#suggestions", status_code=303)
    return _block(request, "run", _context(transition, run, sg_error=error), 422 if error else 200)


@pages.get("/suggestions/{suggestion_id}/panel", response_class=HTMLResponse)
def run_panel(request: Request, suggestion_id: Id, db: SessionDep) -> Response:
    """One request's suggestions (polled every second while the worker ranks them)."""
    row = services.get_suggestion(db, suggestion_id)
    transition = transition_services.get_transition(db, row.transition_id)
    return _block(request, "run", _context(transition, row))


@pages.post("/suggestions/{suggestion_id}/items/{index}/{state}", response_class=HTMLResponse)
def mark(
    request: Request, suggestion_id: Id, index: Index, state: Literal["accepted", "discarded"], db: SessionDep
) -> Response:
    """Remember that an item was inserted (through the keyframe form) or discarded."""
    row = services.get_suggestion(db, suggestion_id)
    transition = transition_services.get_transition(db, row.transition_id)
    services.set_item_state(db, row, index, state)
    if state == "discarded":
        return HTMLResponse("")
    context = _context(transition, row)
    context["item"] = context["sg_items"][index]
    return _block(request, "item", context)
