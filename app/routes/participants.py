"""A participant's side of a study (docs/studies.md): the page /p/<token> and its two API calls.

The token in the path is the participant's only credential and opens exactly this: their own next item and
answering it. It is no share link and no owner token, so it opens nothing else (the researcher's routes are
owner-only). /p/ and /api/p/ are public prefixes (app/deps.py): the token is checked here, and wrong tokens
count toward the same per-client limit as wrong share links (429).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.orm import Session

from app.deps import AccessDenied, SessionDep, refuse_if_throttled, throttle_key, token_throttle
from app.templating import templates
from infra.tables import StudyParticipant
from services import studies

router = APIRouter(tags=["participants"])
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
#: A participant route can also answer: too many wrong tokens from this client (app.deps.TokenThrottle).
THROTTLED: dict[int | str, dict[str, Any]] = {
    429: {"description": "too many wrong tokens from this client; try again later", "content": _ERROR}
}
pages = APIRouter(include_in_schema=False)
GONE = "this participant link does not exist"


def _participant(request: Request, db: Session, token: str) -> StudyParticipant:
    throttle, address = token_throttle(request), throttle_key(request)
    refuse_if_throttled(throttle, address)
    participant = studies.find_participant(db, token)
    if participant is None:
        throttle.failed(address)
        raise AccessDenied(404, GONE)
    return participant


Token = Path(min_length=1, max_length=64)


@router.get(
    "/api/p/{token}/next",
    response_model=studies.ItemOut,
    responses={204: {"description": "every item is answered"}, **THROTTLED},
)
def next_item(request: Request, db: SessionDep, token: str = Token) -> Response | studies.ItemOut:
    """The participant's next unanswered item (a reload resumes here), or 204 when all are answered."""
    item = studies.next_item(db, _participant(request, db, token))
    if item is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return item


@router.post(
    "/api/p/{token}/answers",
    response_model=studies.AnswerOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"description": "this item is already answered; the first answer stands", "content": _ERROR},
        **THROTTLED,
    },
)
def answer(
    request: Request, data: studies.AnswerIn, db: SessionDep, token: str = Token
) -> Response | studies.AnswerOut:
    """Answer one item: rate 1-5, mark a t in [0, 1], triplet the index of the odd frame; `ms` the response
    time. One answer per item: a second is 409 and changes nothing."""
    participant = _participant(request, db, token)
    try:
        return studies.answer(db, participant, data)
    except studies.AlreadyAnswered as exc:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)


@pages.get("/p/{token}", response_class=HTMLResponse)
def participant_page(request: Request, db: SessionDep, token: str = Token) -> Response:
    """Instructions and consent first, then one item at a time (static/studies.js), then thanks."""
    participant = _participant(request, db, token)
    study = studies.get_study(db, participant.study_id)
    answered, total = studies.progress(db, participant)
    context = {"study": study, "token": token, "answered": answered, "total": total}
    return templates.TemplateResponse(request, "studies/participant.html", context)
