"""Server-Sent Events for a render: a resumable stream of bus events, shared by the API and the pages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import Request
from sqlalchemy import select

from app.bus import Event, get_bus
from app.db import new_session
from app.tables import FINISHED_STATUSES, Render
from core import events

#: How long one read waits for news before checking whether the client is still there.
READ_BLOCK_SECONDS = 5.0


def _status(render_id: int) -> str | None:
    with new_session() as db:
        return db.scalar(select(Render.status).where(Render.id == render_id))


async def render_events(request: Request, render_id: int, last_event_id: str | None) -> AsyncIterator[Event]:
    """Every event after last_event_id, live, until the render's final event."""
    bus = get_bus()
    after = last_event_id or None
    while True:
        if await request.is_disconnected():
            return
        batch = await bus.read(render_id, after, READ_BLOCK_SECONDS)
        for item in batch:
            after = item.id
            yield item
            if item.event.terminal:
                return
        if not batch:
            status = await asyncio.to_thread(_status, render_id)
            if status in FINISHED_STATUSES:
                # The final event was sent before `after` or its stream has expired: end the stream anyway.
                yield Event(after or "0", events.finished(status, render_id, replayed=True))
                return
