from __future__ import annotations

import json

from fastapi import APIRouter, Request, status
from sse_starlette.sse import EventSourceResponse

from app.deps import AccessDep, Id, LastEventId, SessionDep
from app.streams import render_events
from services import jobs, presenters, rendering
from services.schemas import RenderCreated, RenderOut
from services.transitions import get_transition

router = APIRouter(prefix="/api", tags=["renders"])


@router.post(
    "/transitions/{transition_id}/renders", response_model=RenderCreated, status_code=status.HTTP_202_ACCEPTED
)
def start_render(transition_id: Id, db: SessionDep, access: AccessDep) -> RenderCreated:
    render = rendering.start_render(db, get_transition(db, transition_id), access.link_id)
    return RenderCreated.model_validate(render)


@router.get("/transitions/{transition_id}/renders", response_model=list[RenderCreated])
def list_renders(transition_id: Id, db: SessionDep) -> list[RenderCreated]:
    transition = get_transition(db, transition_id)
    return [RenderCreated.model_validate(r) for r in reversed(transition.renders)]


@router.get("/renders/{render_id}", response_model=RenderOut)
def get_render(render_id: Id, db: SessionDep) -> RenderOut:
    return presenters.render_out(rendering.get_render(db, render_id))


@router.post("/renders/{render_id}/cancel", response_model=RenderOut)
def cancel_render(render_id: Id, db: SessionDep) -> RenderOut:
    return presenters.render_out(rendering.cancel_render(db, rendering.get_render(db, render_id)))


@router.post("/renders/{render_id}/retry", response_model=RenderOut, status_code=status.HTTP_202_ACCEPTED)
def retry_render(render_id: Id, db: SessionDep, access: AccessDep) -> RenderOut:
    """Queue again exactly the frames a failed or cancelled render is missing; 422 for any other status,
    503 (nothing changed) when the render queue is unreachable."""
    return presenters.render_out(jobs.retry_render(db, rendering.get_render(db, render_id), access.link_id))


@router.get(
    "/renders/{render_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "progress, frame, preview, done|failed|cancelled",
        }
    },
)
async def render_event_stream(
    render_id: Id,
    request: Request,
    db: SessionDep,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    rendering.get_render(db, render_id)  # 404 before the stream starts
    db.close()

    async def stream():  # type: ignore[no-untyped-def]
        async for item in render_events(request, render_id, last_event_id):
            yield {"id": item.id, "event": item.event.name, "data": json.dumps(item.event.payload())}

    return EventSourceResponse(stream(), ping=15)
