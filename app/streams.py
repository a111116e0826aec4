"""Server-Sent Events for a render: a resumable stream of bus events, shared by the API and the pages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import Request
from sqlalchemy import select

from app import events
from app.db import new_session
from app.models import FINISHED_STATUSES, Render

#: How long one read waits for news before checking whether the client is still there.
READ_BLOCK_SECONDS = 5.0


def _status(render_id: int) -> str | None:
    with new_session() as db:
        return db.scalar(select(Render.status).where(Render.id == render_id))


async def render_events(
    request: Request, render_id: int, last_event_id: str | None
) -> AsyncIterator[events.Event]:
    """Every event after last_event_id, live, until the render's final event."""
    bus = events.get_bus()
    after = last_event_id or None
    while True:
        if await request.is_disconnected():
            return
        batch = await bus.read(render_id, after, READ_BLOCK_SECONDS)
        for event in batch:
            after = event.id
            yield event
            if event.name in events.TERMINAL:
                return
        if not batch:
            status = await asyncio.to_thread(_status, render_id)
            if status in FINISHED_STATUSES:
                # The final event was sent before `after` or its stream has expired: end the stream anyway.
                yield events.Event(after or "0", status, {"render_id": render_id, "replayed": True})
                return
