"""Server-Sent Events for a render: a resumable stream of bus events, shared by the API and the pages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from fastapi import Request
from sqlalchemy import select

from core import events
from core.statuses import FINISHED
from infra.bus import Event, EventBus, get_bus
from infra.db import new_session
from infra.tables import Render
from infra.watching import WATCH_SECONDS, watch

log = logging.getLogger(__name__)

#: How long one read waits for news before checking whether the client is still there.
READ_BLOCK_SECONDS = 5.0


def _status(render_id: int) -> str | None:
    try:
        with new_session() as db:
            return db.scalar(select(Render.status).where(Render.id == render_id))
    except Exception as exc:  # the database away for a moment: not finished, as far as we know
        log.warning("render %s: could not read its status (%s)", render_id, exc)
        return "unknown"


def _superseded(bus: EventBus, render_id: int, event_id: str) -> bool:
    """Whether events follow this one (a final event of a render that was retried)."""
    newest = bus.last_id(render_id)
    return newest is not None and newest != event_id


async def render_events(request: Request, render_id: int, last_event_id: str | None) -> AsyncIterator[Event]:
    """Every event after last_event_id, live, until the render's final event.

    A final event that more events follow (the render was retried after it ended) does not end the
    stream; a render whose row is gone (its transition was deleted) ends it with `cancelled`; while the
    bus is away (Redis restarting) the stream waits for it instead of failing.
    """
    bus = get_bus()
    after = last_event_id or None
    marked = -WATCH_SECONDS
    while True:
        if await request.is_disconnected():
            return
        if time.monotonic() - marked > WATCH_SECONDS / 3:  # the worker sends previews while someone watches
            await asyncio.to_thread(watch, render_id)
            marked = time.monotonic()
        try:
            batch = await bus.read(render_id, after, READ_BLOCK_SECONDS)
        except Exception as exc:
            log.warning("render %s: reading its events failed (%s); trying again", render_id, exc)
            batch = []
            await asyncio.sleep(1.0)
        for position, item in enumerate(batch):
            after = item.id
            if item.event.terminal and (
                position + 1 < len(batch) or await asyncio.to_thread(_superseded, bus, render_id, item.id)
            ):
                continue  # the render was retried after this ending: its stream goes on
            yield item
            if item.event.terminal:
                return
        if not batch:
            status = await asyncio.to_thread(_status, render_id)
            if status is None:  # deleted (with its transition): its events went with it
                yield Event(after or "0", events.Cancelled(render_id=render_id, replayed=True))
                return
            if status in FINISHED:
                # The final event was sent before `after` or its stream has expired: end the stream anyway.
                yield Event(after or "0", events.finished(status, render_id, replayed=True))
                return
