"""Live co-viewing: one SSE stream per transition, and the page fragments a co-viewer's page refreshes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sse_starlette.sse import EventSourceResponse

from app import coviewing
from app.deps import Id, LastEventId, QueryId, SessionDep
from app.routes.pages.editor import EDITOR, chosen_render, editor_context, render_panel_response
from app.templating import templates
from infra.db import new_session
from services.transitions import get_transition

router = APIRouter(tags=["events"])


def _start(transition_id: int) -> coviewing.Cursor:
    with new_session() as db:
        return coviewing.initial_cursor(db, transition_id)


@router.get(
    "/api/transitions/{transition_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "changed (an edit: version, kind, summary, link_id), deleted; render (a render "
            "started: render_id, transition_version, frames_total) followed by that render's progress, "
            "frame, preview and done|failed|cancelled",
        }
    },
)
async def transition_event_stream(
    transition_id: Id,
    request: Request,
    db: SessionDep,
    last_event_id: LastEventId = None,
    after: str | None = None,
) -> EventSourceResponse:
    """Everything co-viewers of a transition see, live: its edits and its renders' events.

    Without Last-Event-ID (or `after`, a cursor a page was drawn at) the stream starts now: the history is
    at GET .../edits, a render's frames at GET /api/renders/{id}. Every event's id is a cursor; reconnect
    with it as Last-Event-ID to get exactly what was missed."""
    get_transition(db, transition_id)  # 404 before the stream starts
    db.close()
    start = coviewing.Cursor.decode(last_event_id) or coviewing.Cursor.decode(after)
    if start is None:
        start = await asyncio.to_thread(_start, transition_id)

    async def stream() -> AsyncIterator[dict[str, Any]]:
        async for item in coviewing.follow(request, transition_id, start):
            yield {"id": item.cursor.encode(), "event": item.name, "data": json.dumps(item.data)}

    return EventSourceResponse(stream(), ping=15)


# ---------------------------------------------------------------- fragments a co-viewer's page fetches


@router.get("/transitions/{transition_id}/live", response_class=HTMLResponse, include_in_schema=False)
def live_state(request: Request, transition_id: Id, db: SessionDep) -> Response:
    """The header, settings, timeline and history as they are now, each swapped in by its id."""
    transition = get_transition(db, transition_id)
    context = editor_context(db, transition)
    context.update(oob=True)
    return templates.TemplateResponse(
        request, EDITOR, context, block_names=["header", "settings", "timeline", "history"]
    )


@router.get("/transitions/{transition_id}/render-panel", response_class=HTMLResponse, include_in_schema=False)
def render_panel(
    request: Request, transition_id: Id, db: SessionDep, render: QueryId | None = None
) -> Response:
    """The render panel (film strip, progress, its live stream) of the newest render, or of `render`."""
    transition = get_transition(db, transition_id)
    return render_panel_response(request, db, transition, chosen_render(db, transition, render))
