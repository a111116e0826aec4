"""Undo, redo, jump back to a version; how a stale write (409) or a refused link (401/403/404) is answered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from app.deps import (
    LINK_COOKIE,
    Access,
    AccessDenied,
    AccessDep,
    Id,
    IfMatchDep,
    SessionDep,
    based_on,
    form_version,
)
from app.htmx import is_htmx, page_or_blocks
from app.templating import templates
from core.params import whole_number
from infra.db import new_session
from infra.tables import Edit
from services import history, presenters
from services.errors import FieldError
from services.history import Conflict
from services.schemas import BasedOn, RevertRequest, TransitionOut
from services.transitions import get_transition

router = APIRouter(prefix="/api/transitions", tags=["history"])

_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "the version named (If-Match or `version`) is stale: detail and current"}
}


@router.post("/{transition_id}/undo", response_model=TransitionOut, responses=_CONFLICT)
def undo(
    transition_id: Id, db: SessionDep, access: AccessDep, if_match: IfMatchDep, body: BasedOn | None = None
) -> TransitionOut:
    """Take back the newest edit not yet undone (an edit itself: it bumps the version and is recorded)."""
    return _moved(db, transition_id, based_on(if_match, body.version if body else None), access, history.undo)


@router.post("/{transition_id}/redo", response_model=TransitionOut, responses=_CONFLICT)
def redo(
    transition_id: Id, db: SessionDep, access: AccessDep, if_match: IfMatchDep, body: BasedOn | None = None
) -> TransitionOut:
    """Apply again the newest undone edit (until a new edit is made: then there is nothing to redo)."""
    return _moved(db, transition_id, based_on(if_match, body.version if body else None), access, history.redo)


def _moved(
    db: Session, transition_id: int, expected: int | None, access: Access, step: Callable[..., Edit]
) -> TransitionOut:
    """Undo or redo on the transition, answered with the transition as it is now."""
    transition = get_transition(db, transition_id)
    step(db, transition, expected=expected, actor=access.actor)
    return presenters.transition_out(db, transition)


@router.post("/{transition_id}/revert", response_model=TransitionOut, responses=_CONFLICT)
def revert(
    transition_id: Id, data: RevertRequest, db: SessionDep, access: AccessDep, if_match: IfMatchDep
) -> TransitionOut:
    """Make the transition what it was at `to_version`, as one new edit (so it can be undone in turn)."""
    transition = get_transition(db, transition_id)
    expected = based_on(if_match, data.version)
    history.revert(db, transition, data.to_version, expected=expected, actor=access.actor)
    return presenters.transition_out(db, transition)


# ---------------------------------------------------------------- answers


def current_state(transition_id: int) -> dict[str, Any] | None:
    with new_session() as db:
        try:
            transition = get_transition(db, transition_id)
        except Exception:
            return None
        return presenters.transition_out(db, transition).model_dump(mode="json")


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api") and "text/html" in request.headers.get("accept", "")


def install(app: FastAPI) -> None:
    @app.exception_handler(Conflict)
    async def _conflict(_request: Request, exc: Conflict) -> Response:
        current = await asyncio.to_thread(current_state, exc.transition_id)
        return JSONResponse(
            {"detail": str(exc), "current": current, "changes": exc.changes},
            status_code=409,
            headers={"ETag": f'"{exc.current}"'},
        )

    @app.exception_handler(AccessDenied)
    async def _denied(request: Request, exc: AccessDenied) -> Response:
        response: Response
        if exc.status == 303:
            response = RedirectResponse(exc.message, status_code=303)
        elif _wants_html(request):
            response = templates.TemplateResponse(
                request,
                "pages/access.html",
                {"status": exc.status, "message": exc.message},
                status_code=exc.status,
            )
        else:
            response = JSONResponse({"detail": exc.message}, status_code=exc.status)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="segue"'
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        if exc.clear_cookie:
            response.delete_cookie(LINK_COOKIE, path="/")
        return response


# ---------------------------------------------------------------- the history panel's buttons (htmx)

pages = APIRouter(include_in_schema=False)


async def _history_page(request: Request, db: Any, transition_id: int, access: Any, action: str) -> Response:
    from app.routes.pages.editor import EDITOR, conflict_response, editor_context

    transition = get_transition(db, transition_id)
    form = await request.form()
    message = None
    try:
        expected = form_version(form.get("version"))
        if action == "undo":
            history.undo(db, transition, expected=expected, actor=access.actor)
        elif action == "redo":
            history.redo(db, transition, expected=expected, actor=access.actor)
        else:
            to_version = whole_number(form.get("to_version"))
            if to_version is None:
                raise FieldError("to_version", "to_version: the version to go back to, like 3")
            history.revert(db, transition, to_version, expected=expected, actor=access.actor)
    except Conflict as exc:
        return conflict_response(request, db, exc)
    except FieldError as exc:
        message = exc.message
    if not is_htmx(request) and message is None:
        return RedirectResponse(f"/transitions/{transition_id}", status_code=303)
    db.expire_all()
    context = editor_context(db, transition)
    context.update(oob=is_htmx(request), history_error=message)
    blocks = ["header", "settings", "timeline", "history"]
    return page_or_blocks(request, EDITOR, context, blocks, 422 if message else 200)


@pages.post("/transitions/{transition_id}/undo", response_class=HTMLResponse)
async def undo_page(request: Request, transition_id: Id, db: SessionDep, access: AccessDep) -> Response:
    return await _history_page(request, db, transition_id, access, "undo")


@pages.post("/transitions/{transition_id}/redo", response_class=HTMLResponse)
async def redo_page(request: Request, transition_id: Id, db: SessionDep, access: AccessDep) -> Response:
    return await _history_page(request, db, transition_id, access, "redo")


@pages.post("/transitions/{transition_id}/revert", response_class=HTMLResponse)
async def revert_page(request: Request, transition_id: Id, db: SessionDep, access: AccessDep) -> Response:
    return await _history_page(request, db, transition_id, access, "revert")
