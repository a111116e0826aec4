"""The render pages: start, cancel and retry a render (the editor's render panel), its live feed, its
confusion map and a frame's page."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sse_starlette.sse import EventSourceResponse

from app.deps import AccessDep, Id, Index, LastEventId, SessionDep
from app.htmx import page_or_blocks
from app.routes.pages.editor import render_panel_response, scores_context
from app.streams import render_events
from app.templating import fragment, templates
from core import events
from core.statuses import Status
from infra.db import new_session
from infra.tables import Render
from services import jobs, presenters, rendering, scores, transitions
from services.errors import BrokerUnavailable, FieldError, NotFound, TooMany

router = APIRouter()
SCORES_EVERY_SECONDS = 1.0


@router.post("/transitions/{transition_id}/render", response_class=HTMLResponse)
def render(request: Request, transition_id: Id, db: SessionDep, access: AccessDep) -> Response:
    transition = transitions.get_transition(db, transition_id)
    error = None
    started: Render | None
    try:
        started = rendering.start_render(db, transition, access.link_id)
    except (BrokerUnavailable, FieldError, TooMany) as exc:  # FieldError: too many frames, or over a quota
        error = str(exc)
        started = presenters.latest_render(db, transition)
    return render_panel_response(request, db, transition, started, error)


@router.post("/renders/{render_id}/cancel", response_class=HTMLResponse)
def cancel(request: Request, render_id: Id, db: SessionDep) -> Response:
    chosen = rendering.get_render(db, render_id)
    error = None
    try:
        rendering.cancel_render(db, chosen)
    except FieldError as exc:
        error = exc.message
    db.refresh(chosen)
    return render_panel_response(request, db, chosen.transition, chosen, error)


@router.post("/renders/{render_id}/retry", response_class=HTMLResponse)
def retry(request: Request, render_id: Id, db: SessionDep, access: AccessDep) -> Response:
    """The Retry button of a failed or cancelled render: its missing frames are queued again."""
    chosen = rendering.get_render(db, render_id)
    error = None
    try:
        jobs.retry_render(db, chosen, access.link_id)
    except (BrokerUnavailable, FieldError, TooMany) as exc:
        error = exc.message if isinstance(exc, FieldError) else str(exc)
    db.refresh(chosen)
    return render_panel_response(request, db, chosen.transition, chosen, error)


@router.get("/renders/{render_id}/scores", response_class=HTMLResponse)
def scores_panel(request: Request, render_id: Id, db: SessionDep, scorer: str | None = None) -> Response:
    """The confusion map alone (switching scorer, or refreshing after a render)."""
    chosen = rendering.get_render(db, render_id)
    context = {"render": chosen, **scores_context(db, chosen, scorer, live=not chosen.is_finished)}
    return templates.TemplateResponse(request, "partials/scores.html", context)


def _scores_html(render_id: int, can_edit: bool) -> str:
    with new_session() as db:
        chosen = rendering.get_render(db, render_id)
        context = scores_context(db, chosen, live=True)
        return fragment("partials/scores.html", render=chosen, can_edit=can_edit, **context)


@router.get("/renders/{render_id}/stream")
async def render_stream(
    request: Request,
    render_id: Id,
    db: SessionDep,
    access: AccessDep,
    last_event_id: LastEventId = None,
    after: str | None = None,
) -> EventSourceResponse:
    """The film strip's live feed: each event is the HTML for the element it updates.

    `after` is the newest event id when the page was drawn: the page already shows everything before it.
    """
    chosen = rendering.get_render(db, render_id)
    transition_id = chosen.transition_id
    db.close()

    async def stream() -> AsyncIterator[dict[str, Any]]:
        scored_at, stale = 0.0, False
        async for item in render_events(request, render_id, last_event_id or after):
            messages = _stream_messages(item.event, render_id, transition_id, can_edit=access.can_edit)
            stale = stale or isinstance(item.event, events.FrameDone)
            # The plots are redrawn from the database at most once a second (and at the end), not per frame.
            now = time.monotonic()
            if stale and (now - scored_at >= SCORES_EVERY_SECONDS or item.event.terminal):
                html = await asyncio.to_thread(_scores_html, render_id, access.can_edit)
                messages.insert(-1 if item.event.terminal else len(messages), ("scores", html))
                scored_at, stale = now, False
            for name, html in messages:
                yield {"id": item.id, "event": name, "data": html}

    return EventSourceResponse(stream(), ping=15)


def _stream_messages(
    event: events.RenderEvent, render_id: int, transition_id: int, can_edit: bool = True
) -> list[tuple[str, str]]:
    """The (SSE event name, HTML) pairs that show one render event on the page."""
    match event:
        case events.FrameDone():
            tile = fragment(
                "partials/frame_tile.html",
                render_id=render_id,
                index=event.index,
                t=event.t,
                url=event.url,
                status=Status.DONE,
            )
            return [(f"frame-{event.index}", tile)]
        case events.Preview():
            return [
                (
                    f"frame-{index}",
                    fragment(
                        "partials/frame_tile.html",
                        render_id=render_id,
                        index=index,
                        t=None,
                        url=image,
                        status="preview",
                        step=event.step,
                        steps=event.steps,
                    ),
                )
                for index, image in zip(event.indices, event.images, strict=False)
            ]
        case events.Progress():
            return [
                ("progress", fragment("partials/progress.html", p=event.payload())),
                (
                    "render-status",
                    fragment("partials/render_status.html", status=event.status, render_id=render_id),
                ),
            ]
        case events.Finished():
            stats = event.stats
            done = stats.frames_computed + stats.frames_reused if stats else 0
            final = {"done": done, "total": stats.frames_total if stats else done, "status": event.name}
            outcome = fragment(
                "partials/render_done.html",
                outcome=event.name,
                data=event.payload(),
                transition_id=transition_id,
                render_id=render_id,
                can_edit=can_edit,
            )
            return [
                ("progress", fragment("partials/progress.html", p=final)),
                ("status", outcome),
                ("end", json.dumps({"status": event.name})),
            ]
    return []


@router.get("/frames/{render_id}/{index}", response_class=HTMLResponse)
def frame_detail(request: Request, render_id: Id, index: Index, db: SessionDep) -> Response:
    chosen = rendering.get_render(db, render_id)
    frame = next((f for f in chosen.frames if f.index == index), None)
    if frame is None:
        raise NotFound("frame", index)
    context = {
        "render": chosen,
        "frame": frame,
        "url": presenters.frame_url(frame),
        "p": chosen.params,
        "transition": chosen.transition,
        "neighbours": (
            index - 1 if index > 0 else None,
            index + 1 if index + 1 < chosen.frames_total else None,
        ),
        "neighbour_urls": [
            presenters.frame_url(f) if f else None
            for f in (
                next((f for f in chosen.frames if f.index == index - 1), None),
                next((f for f in chosen.frames if f.index == index + 1), None),
            )
        ],
        "flags": scores.frame_flags(db, chosen, index),
        # A jump from this frame to the next is bridged between the two frames, not on this one
        "insert_t": scores.insert_position(db, chosen, frame),
    }
    return page_or_blocks(request, "pages/frame.html", context, ["detail"])
