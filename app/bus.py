"""The bus that carries events (core.events) to the web app: render events and transitions' edit events.

The worker (render events) and the services (edit events) publish; the web app streams them to browsers
as Server-Sent Events. Each event has an id from the bus, so a browser that reconnects with
Last-Event-ID receives exactly what it missed:
- distributed mode: a Redis Stream per render or transition (ids like "1732368000000-0");
- embedded mode: rows of the render_events / transition_events tables (integer ids), so no server is needed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import func, select

from app.config import Settings, get_settings
from app.db import new_session
from app.tables import RenderEventRow, TransitionEventRow
from core.events import parse, parse_transition_event

#: How long an event stream is kept in Redis after its last event.
STREAM_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Topic:
    """What a bus carries: events of one kind, each owned by a render or a transition (one stream each)."""

    kind: str  # the middle of the Redis key: <namespace>:<kind>:<owner id>:events
    row: Any  # the table of the embedded mode, with an `owner` column
    owner_column: str
    owner_of: Callable[[Any], int]  # the event's owner id
    parse: Callable[[str, dict[str, Any]], Any]  # name + payload -> typed event


RENDERS = Topic("render", RenderEventRow, "render_id", lambda e: e.render_id, parse)
TRANSITIONS = Topic(
    "transition", TransitionEventRow, "transition_id", lambda e: e.transition_id, parse_transition_event
)


@dataclass(frozen=True)
class Event:
    """An event as read from the bus: its id there (for Last-Event-ID) and the typed event."""

    id: str
    event: Any


class EventBus(Protocol):
    def publish(self, event: Any) -> str: ...

    async def read(self, owner_id: int, after: str | None, block_seconds: float) -> list[Event]:
        """Events after the id `after` (all when None), waiting up to block_seconds for the first."""
        ...

    def last_id(self, owner_id: int) -> str | None:
        """The id of the newest event so far, so a page drawn from the database streams only what follows."""
        ...


class SqlEventBus:
    """Events as rows; readers poll. Works on SQLite across processes without any server."""

    def __init__(self, topic: Topic = RENDERS, poll_seconds: float = 0.25) -> None:
        self.topic = topic
        self.poll_seconds = poll_seconds

    def _owner(self) -> Any:
        return getattr(self.topic.row, self.topic.owner_column)

    def publish(self, event: Any) -> str:
        with new_session() as session:
            row = self.topic.row(
                **{self.topic.owner_column: self.topic.owner_of(event)}, name=event.name, data=event.payload()
            )
            session.add(row)
            session.commit()
            return str(row.id)

    def _fetch(self, owner_id: int, after: int) -> list[Event]:
        row = self.topic.row
        with new_session() as session:
            rows = session.scalars(
                select(row).where(self._owner() == owner_id, row.id > after).order_by(row.id).limit(500)
            ).all()
            return [Event(str(r.id), self.topic.parse(r.name, r.data)) for r in rows]

    def last_id(self, owner_id: int) -> str | None:
        with new_session() as session:
            newest = session.scalar(select(func.max(self.topic.row.id)).where(self._owner() == owner_id))
            return str(newest) if newest is not None else None

    async def read(self, owner_id: int, after: str | None, block_seconds: float) -> list[Event]:
        after_id = int(after) if after and after.isdigit() else 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block_seconds
        while True:
            events = await asyncio.to_thread(self._fetch, owner_id, after_id)
            if events or loop.time() >= deadline:
                return events
            await asyncio.sleep(self.poll_seconds)


class RedisEventBus:
    """Events in one Redis Stream per owner; readers block on XREAD."""

    def __init__(self, url: str, namespace: str = "segue", topic: Topic = RENDERS) -> None:
        import redis
        import redis.asyncio

        self.url = url
        self.namespace = namespace
        self.topic = topic
        self._sync = redis.Redis.from_url(url, decode_responses=True)
        self._async_client: Any = None
        self._async_module = redis.asyncio

    def stream_key(self, owner_id: int) -> str:
        return f"{self.namespace}:{self.topic.kind}:{owner_id}:events"

    def publish(self, event: Any) -> str:
        key = self.stream_key(self.topic.owner_of(event))
        pipe = self._sync.pipeline()
        pipe.xadd(key, {"name": event.name, "data": json.dumps(event.payload())})
        pipe.expire(key, STREAM_TTL_SECONDS)
        event_id, _ = pipe.execute()
        return str(event_id)

    def last_id(self, owner_id: int) -> str | None:
        newest = self._sync.xrevrange(self.stream_key(owner_id), count=1)
        return str(newest[0][0]) if newest else None

    def _client(self) -> Any:
        # One async client per event loop: a client is bound to the loop that created it.
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_client[0] is not loop:
            # The socket timeout must outlast the XREAD block, or a quiet stream reads as a dead server.
            client = self._async_module.Redis.from_url(self.url, decode_responses=True, socket_timeout=60)
            self._async_client = (loop, client)
        return self._async_client[1]

    async def read(self, owner_id: int, after: str | None, block_seconds: float) -> list[Event]:
        block_ms = max(1, int(block_seconds * 1000))
        reply = await self._client().xread(
            {self.stream_key(owner_id): after or "0-0"}, count=500, block=block_ms
        )
        events = []
        for _key, entries in reply or []:
            for event_id, fields in entries:
                events.append(
                    Event(str(event_id), self.topic.parse(fields["name"], json.loads(fields["data"])))
                )
        return events


@lru_cache
def _bus_for(mode: str, redis_url: str, namespace: str, poll_seconds: float, topic: Topic) -> EventBus:
    if mode == "distributed":
        return RedisEventBus(redis_url, namespace, topic)
    return SqlEventBus(topic, poll_seconds)


def get_bus(settings: Settings | None = None, topic: Topic = RENDERS) -> EventBus:
    """The render events bus (or, with topic=TRANSITIONS, the co-viewing channel of transitions)."""
    s = settings or get_settings()
    return _bus_for(s.mode, s.redis_url, s.redis_namespace, s.event_poll_seconds, topic)
