"""Comparing a study with each U-Net block (docs/studies.md): the API, the study page's button and progress.
The owner's only, like everything under /api/studies and /studies (share links get 403)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from app.deps import Id, SessionDep, owner_only
from app.htmx import is_htmx
from app.templating import templates
from services import studies, study_blocks
from services.errors import BrokerUnavailable, Busy

router = APIRouter(tags=["studies"])
pages = APIRouter(include_in_schema=False)

ANSWERS: dict[int | str, dict[str, Any]] = {
    409: {"description": "a reading of this study's blocks is queued or running"},
    503: {"description": "the worker queue cannot be reached; nothing was queued"},
}


@router.post(
    "/api/studies/{study_id}/blocks",
    response_model=study_blocks.BlocksOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=ANSWERS,
)
@owner_only
def ask_blocks(study_id: Id, db: SessionDep) -> study_blocks.BlocksOut:
    """Read every U-Net block (each down, mid and up block, at t = 50, 200, 500, 800, without text) for the
    study's frames; the results then hold one distance row per block and noise level. 409 while one runs."""
    study = studies.get_study(db, study_id)
    return study_blocks.blocks_out(study, study_blocks.ask(db, study))


@router.get("/api/studies/{study_id}/blocks", response_model=study_blocks.BlocksOut)
@owner_only
def get_blocks(study_id: Id, db: SessionDep) -> study_blocks.BlocksOut:
    """The state of the reading: none (never asked), queued, running (frames_done of frames_total), done,
    failed (error)."""
    study = studies.get_study(db, study_id)
    return study_blocks.blocks_out(study, study_blocks.get_job(db, study))


def _panel(request: Request, db: SessionDep, study_id: int, finished_now: bool = False,
           error: str | None = None) -> Response:  # fmt: skip
    study = studies.get_study(db, study_id)
    context = {
        "study": study,
        "blocks": study_blocks.blocks_out(study, study_blocks.get_job(db, study)),
        "finished_now": finished_now,
        "block_error": error,
    }
    return templates.TemplateResponse(request, "studies/blocks_panel.html", context)


@pages.post("/studies/{study_id}/blocks", response_class=HTMLResponse)
@owner_only
def ask_blocks_form(request: Request, study_id: Id, db: SessionDep) -> Response:
    """The "Compare with each U-Net block" button: queue it and show its progress (htmx), or go back to the
    study page (a plain form post)."""
    error = None
    try:
        study_blocks.ask(db, studies.get_study(db, study_id))
    except Busy:
        pass  # under way already: the panel shows its progress
    except BrokerUnavailable as exc:
        error = str(exc)
    if not is_htmx(request):
        return RedirectResponse(f"/studies/{study_id}#blocks", status_code=status.HTTP_303_SEE_OTHER)
    return _panel(request, db, study_id, error=error)


@pages.get("/studies/{study_id}/blocks", response_class=HTMLResponse)
@owner_only
def blocks_panel(request: Request, study_id: Id, db: SessionDep, poll: bool = False) -> Response:
    """The panel polled while the reading runs; once it ends (`poll`: asked by a running panel), it loads
    the study's results again so the new rows appear."""
    return _panel(request, db, study_id, finished_now=poll)
