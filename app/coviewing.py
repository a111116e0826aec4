"""The co-viewing stream of one transition: its edit events and the events of its renders, in one feed.

Two sources are followed at once and merged in arrival order:
- the transition's channel (infra/channels.py): `changed` (an edit saved, with its version) and `deleted`;
- the render bus (infra/bus.py): when a newer render of the transition appears, a `render` event announces
  it and its own events follow (`progress`, `frame`, `preview`, then `done`, `failed` or `cancelled`).

Each event's SSE id is a cursor over both sources, `<channel id>~<render id>~<render event id or end>`,
so a client reconnecting with Last-Event-ID gets exactly what it missed from each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import events
from core.params import whole_number
from core.statuses import FINISHED, Status
from infra.bus import get_bus
from infra.channels import get_channel
from infra.db import new_session
from infra.tables import Render

#: How long one read of the channel waits for news.
READ_BLOCK_SECONDS = 5.0
#: How often a newer render is looked for, and how long one read of a render stream waits.
RENDER_POLL_SECONDS = 0.5
END = "end"


@dataclass(frozen=True)
class Cursor:
    channel: str | None = None  # the newest channel event delivered (None: from the start)
    render: int | None = None  # the render being followed
    render_after: str | None = None  # its newest event delivered; END: its final event was delivered

    def encode(self) -> str:
        return f"{self.channel or ''}~{self.render or ''}~{self.render_after or ''}"

    @classmethod
    def decode(cls, value: str | None) -> Cursor | None:
        if not value or value.count("~") != 2:
            return None
        channel, render, render_after = value.split("~")
        number = whole_number(render)
        if render and number is None:
            return None
        return cls(channel or None, number, render_after or None)


def _newest_render(db: Session, transition_id: int) -> Render | None:
    return db.scalar(
        select(Render).where(Render.transition_id == transition_id).order_by(Render.id.desc()).limit(1)
    )


def initial_cursor(db: Session, transition_id: int) -> Cursor:
    """Where a viewer that has just read the transition from the database starts: only what follows."""
    channel = get_channel().last_id(transition_id)
    render = _newest_render(db, transition_id)
    if render is None:
        return Cursor(channel)
    if render.is_finished:
        return Cursor(channel, render.id, END)
    return Cursor(channel, render.id, get_bus().last_id(render.id))


def _render_state(transition_id: int) -> tuple[int, str, int, int] | None:
    with new_session() as db:
        render = _newest_render(db, transition_id)
        if render is None:
            return None
        return render.id, render.status, render.transition_version, render.frames_total


def _status(render_id: int) -> str | None:
    with new_session() as db:
        return db.scalar(select(Render.status).where(Render.id == render_id))


@dataclass(frozen=True)
class Item:
    cursor: Cursor
    name: str
    data: dict[str, Any]


async def follow(request: Request, transition_id: int, start: Cursor) -> AsyncIterator[Item]:
    """Every event after `start`, live, until the client leaves or the transition is deleted."""
    queue: asyncio.Queue[tuple[str, Any, Any]] = asyncio.Queue(maxsize=1000)
    channel, bus = get_channel(), get_bus()

    async def edits() -> None:
        after = start.channel
        while True:
            for item in await channel.read(transition_id, after, READ_BLOCK_SECONDS):
                after = item.id
                await queue.put(("channel", item.id, item.event))

    async def renders() -> None:
        render_id, after = start.render, start.render_after
        while True:
            state = await asyncio.to_thread(_render_state, transition_id)
            if state is not None and (render_id is None or state[0] > render_id):
                render_id, after = state[0], None
                started = events.RenderStarted(
                    transition_id=transition_id,
                    render_id=state[0],
                    status=state[1],
                    transition_version=state[2],
                    frames_total=state[3],
                )
                await queue.put(("start", render_id, started))
            if render_id is None or after == END:
                await asyncio.sleep(RENDER_POLL_SECONDS)
                continue
            batch = await bus.read(render_id, after, RENDER_POLL_SECONDS)
            for item in batch:
                after = END if item.event.terminal else item.id
                await queue.put(("render", (render_id, after), item.event))
                if item.event.terminal:
                    break
            if not batch:
                status = await asyncio.to_thread(_status, render_id)
                if status is None or status in FINISHED:
                    # Its final event was missed (or its stream expired): say how it ended anyway.
                    after = END
                    final = events.finished(status or Status.FAILED, render_id, replayed=True)
                    await queue.put(("render", (render_id, END), final))

    tasks = [asyncio.create_task(edits()), asyncio.create_task(renders())]
    cursor = start
    try:
        while True:
            if await request.is_disconnected():
                return
            try:
                source, key, event = await asyncio.wait_for(queue.get(), timeout=READ_BLOCK_SECONDS)
            except TimeoutError:
                failed = next((t.exception() for t in tasks if t.done() and t.exception()), None)
                if failed is not None:
                    raise failed from None
                continue
            if source == "channel":
                cursor = replace(cursor, channel=key)
            elif source == "start":
                cursor = replace(cursor, render=key, render_after=None)
            else:
                cursor = replace(cursor, render=key[0], render_after=key[1])
            yield Item(cursor, event.name, event.payload())
            if isinstance(event, events.TransitionDeleted):
                return
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
