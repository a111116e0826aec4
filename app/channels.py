"""One co-viewing channel per transition: its edit events (core.events.TransitionEvent), for every viewer.

The same two backends as the render bus (app/bus.py), with the same resumable ids:
- distributed mode: one Redis Stream per transition (`<namespace>:transition:<id>:events`);
- embedded mode: rows of the transition_events table, polled, so no server is needed.
Render events stay on the render bus; the co-viewing stream (app/routes/events.py) follows both.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import func, select

from app.bus import STREAM_TTL_SECONDS
from app.config import Settings, get_settings
from app.db import new_session
from app.tables import TransitionEventRow
from core.events import TransitionEvent, parse_transition_event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelEvent:
    id: str
    event: TransitionEvent


class TransitionChannel(Protocol):
    def publish(self, event: TransitionEvent) -> str: ...

    def last_id(self, transition_id: int) -> str | None: ...

    async def read(
        self, transition_id: int, after: str | None, block_seconds: float
    ) -> list[ChannelEvent]: ...


class SqlTransitionChannel:
    def __init__(self, poll_seconds: float = 0.25) -> None:
        self.poll_seconds = poll_seconds

    def publish(self, event: TransitionEvent) -> str:
        with new_session() as session:
            row = TransitionEventRow(transition_id=event.transition_id, name=event.name, data=event.payload())
            session.add(row)
            session.commit()
            return str(row.id)

    def last_id(self, transition_id: int) -> str | None:
        with new_session() as session:
            newest = session.scalar(
                select(func.max(TransitionEventRow.id)).where(
                    TransitionEventRow.transition_id == transition_id
                )
            )
            return str(newest) if newest is not None else None

    def _fetch(self, transition_id: int, after: int) -> list[ChannelEvent]:
        with new_session() as session:
            rows = session.scalars(
                select(TransitionEventRow)
                .where(TransitionEventRow.transition_id == transition_id, TransitionEventRow.id > after)
                .order_by(TransitionEventRow.id)
                .limit(500)
            ).all()
            return [ChannelEvent(str(r.id), parse_transition_event(r.name, r.data)) for r in rows]

    async def read(self, transition_id: int, after: str | None, block_seconds: float) -> list[ChannelEvent]:
        after_id = int(after) if after and after.isdigit() else 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block_seconds
        while True:
            items = await asyncio.to_thread(self._fetch, transition_id, after_id)
            if items or loop.time() >= deadline:
                return items
            await asyncio.sleep(self.poll_seconds)


class RedisTransitionChannel:
    def __init__(self, url: str, namespace: str = "segue") -> None:
        import redis
        import redis.asyncio

        self.url = url
        self.namespace = namespace
        self._sync = redis.Redis.from_url(url, decode_responses=True)
        self._async_module = redis.asyncio
        self._async_client: Any = None

    def stream_key(self, transition_id: int) -> str:
        return f"{self.namespace}:transition:{transition_id}:events"

    def publish(self, event: TransitionEvent) -> str:
        key = self.stream_key(event.transition_id)
        pipe = self._sync.pipeline()
        pipe.xadd(key, {"name": event.name, "data": json.dumps(event.payload())})
        pipe.expire(key, STREAM_TTL_SECONDS)
        event_id, _ = pipe.execute()
        return str(event_id)

    def last_id(self, transition_id: int) -> str | None:
        newest = self._sync.xrevrange(self.stream_key(transition_id), count=1)
        return str(newest[0][0]) if newest else None

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_client[0] is not loop:
            client = self._async_module.Redis.from_url(self.url, decode_responses=True, socket_timeout=60)
            self._async_client = (loop, client)
        return self._async_client[1]

    async def read(self, transition_id: int, after: str | None, block_seconds: float) -> list[ChannelEvent]:
        block_ms = max(1, int(block_seconds * 1000))
        reply = await self._client().xread(
            {self.stream_key(transition_id): after or "0-0"}, count=500, block=block_ms
        )
        items = []
        for _key, entries in reply or []:
            for event_id, fields in entries:
                items.append(
                    ChannelEvent(
                        str(event_id), parse_transition_event(fields["name"], json.loads(fields["data"]))
                    )
                )
        return items


@lru_cache
def _channel_for(mode: str, redis_url: str, namespace: str, poll_seconds: float) -> TransitionChannel:
    if mode == "distributed":
        return RedisTransitionChannel(redis_url, namespace)
    return SqlTransitionChannel(poll_seconds)


def get_channel(settings: Settings | None = None) -> TransitionChannel:
    s = settings or get_settings()
    return _channel_for(s.mode, s.redis_url, s.redis_namespace, s.event_poll_seconds)


def announce(event: TransitionEvent) -> None:
    """Publish after the change is committed; a viewer missing one event must not undo a saved edit."""
    try:
        get_channel().publish(event)
    except Exception:  # the edit is saved; co-viewers catch up on their next reload
        log.exception("could not publish %s for transition %s", event.name, event.transition_id)
