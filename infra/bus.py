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
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.events import parse, parse_transition_event
from core.params import MAX_ID, whole_number
from infra.config import Settings, get_settings
from infra.db import new_session
from infra.doorbell import Doorbell
from infra.tables import RenderEventRow, TransitionEventRow

#: How long an event stream is kept in Redis after its last event.
STREAM_TTL_SECONDS = 7 * 24 * 3600

log = logging.getLogger(__name__)
#: A Redis Stream entry id ("1733380000000-3"): one or two unsigned 64-bit numbers.
_STREAM_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")


def _is_stream_id(text: str) -> bool:
    return bool(_STREAM_ID.fullmatch(text)) and all(int(p) < 2**64 for p in text.split("-"))


#: A cap on how long publishing retries while Redis is away, below SEGUE_PUBLISH_RETRY_SECONDS: the web
#: app sets one (`cap_publish_retry`) so a request never hangs on an outage; workers wait out a blip.
_retry_cap: float | None = None


def cap_publish_retry(seconds: float | None) -> None:
    global _retry_cap
    _retry_cap = seconds


def _retry_budget() -> float:
    budget = get_settings().publish_retry_seconds
    return budget if _retry_cap is None else min(budget, _retry_cap)


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


class Fanout:
    """One reader per stream per process, however many viewers follow it (SSE streams of one render).

    The reader waits for news (a blocking XREAD, or polling the table) from the newest event it knows and
    keeps what it read; each viewer takes the events after its own cursor from that cache (or, when it is
    further behind, with one quick read of its own) and otherwise sleeps until the reader wakes it. So
    200 viewers cost one waiting connection, not 200 (redis.asyncio's pool stops at 100).
    """

    IDLE_SECONDS = 30.0
    CACHE = 2000

    def __init__(self, wait_new: Callable[[str], Any], start: str, on_exit: Callable[[], None]) -> None:
        self._wait_new = wait_new  # async (cursor) -> list[Event], waiting a few seconds for news
        self._on_exit = on_exit
        self.start = start  # the cursor just before the first cached event
        self.cursor = start
        self.cache: list[Event] = []
        self.changed = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.last_used = self.loop.time()
        self.task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            while self.loop.time() - self.last_used < self.IDLE_SECONDS:
                try:
                    items = await self._wait_new(self.cursor)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the bus away for a moment: viewers wait, then read again
                    log.info("fan-out reader of %s: %s", self.cursor, exc)
                    await asyncio.sleep(1.0)
                    continue
                if not items:
                    continue
                self.cursor = items[-1].id
                self.cache.extend(items)
                if len(self.cache) > self.CACHE:
                    dropped = len(self.cache) - self.CACHE
                    self.start = self.cache[dropped - 1].id
                    del self.cache[:dropped]
                woken, self.changed = self.changed, asyncio.Event()
                woken.set()
        finally:
            self._on_exit()

    def cached_after(self, after: str) -> list[Event] | None:
        """The cached events after `after`, or None when the cache does not reach back that far."""
        if after == self.start:
            return list(self.cache[:500])
        for position, item in enumerate(self.cache):
            if item.id == after:
                return self.cache[position + 1 : position + 501]
        return None

    async def read(self, after: str, block_seconds: float, read_now: Callable[[str], Any]) -> list[Event]:
        self.last_used = self.loop.time()
        changed = self.changed
        cached = self.cached_after(after)
        if cached:
            return cached
        if cached is None:  # behind the cache (a reconnecting viewer): catch up with a quick read
            items = await read_now(after)
            if items:
                return items  # type: ignore[no-any-return]
        try:
            await asyncio.wait_for(changed.wait(), block_seconds)
        except TimeoutError:
            return []
        self.last_used = self.loop.time()
        cached = self.cached_after(after)
        return cached if cached is not None else await read_now(after)  # type: ignore[no-any-return]


class _Fanouts:
    """The fan-out readers of one bus, per event loop and stream."""

    def __init__(self) -> None:
        self._readers: dict[tuple[int, int], Fanout] = {}

    def get(self, owner_id: int, start: str, wait_new: Callable[[str], Any]) -> Fanout:
        loop = asyncio.get_running_loop()
        key = (id(loop), owner_id)
        reader = self._readers.get(key)
        if reader is None or reader.loop is not loop or reader.task.done():
            reader = Fanout(wait_new, start, lambda: None if self._readers.pop(key, None) else None)
            self._readers[key] = reader
        return reader

    def known(self, owner_id: int) -> Fanout | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        reader = self._readers.get((id(loop), owner_id))
        return reader if reader is not None and not reader.task.done() else None


class SqlEventBus:
    """Events as rows; readers poll. Works on SQLite across processes without any server.

    A reader waits between two polls on a doorbell that every publish of the same database rings
    (infra/doorbell.py), so an event reaches its streams within milliseconds; the poll interval only
    bounds the wait where a ring cannot arrive."""

    def __init__(
        self,
        topic: Topic = RENDERS,
        poll_seconds: float = 0.25,
        database_url: str = "",
        doorbell: bool = True,
    ) -> None:
        self.topic = topic
        self.poll_seconds = poll_seconds
        self._fanouts = _Fanouts()
        self.doorbell = Doorbell(f"events {topic.kind} {database_url}", enabled=doorbell)

    def _owner(self) -> Any:
        return getattr(self.topic.row, self.topic.owner_column)

    def publish(self, event: Any) -> str:
        with new_session() as session:
            row = self.topic.row(
                **{self.topic.owner_column: self.topic.owner_of(event)}, name=event.name, data=event.payload()
            )
            session.add(row)
            try:
                session.commit()
            except IntegrityError:  # its render was deleted (events go with it): nobody is listening
                session.rollback()
                return ""
            event_id = str(row.id)
        self.doorbell.ring(str(self.topic.owner_of(event)))
        return event_id

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

    async def _poll(self, owner_id: int, after: str, block_seconds: float) -> list[Event]:
        after_id = int(after) if after and after.isdigit() else 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block_seconds
        # Listening before the first read: an event committed after that read rings this listener.
        with self.doorbell.listen(str(owner_id)) as bell:
            while True:
                events = await asyncio.to_thread(self._fetch, owner_id, after_id)
                remaining = deadline - loop.time()
                if events or remaining <= 0:
                    return events
                await bell.wait_async(min(self.poll_seconds, remaining))

    async def read(self, owner_id: int, after: str | None, block_seconds: float) -> list[Event]:
        """One poller per stream in this process (Fanout); each viewer reads after its own cursor."""
        # A cursor the table cannot hold (not a row id: a client's own Last-Event-ID) reads from the start.
        number = whole_number(after)
        cursor = str(number) if number is not None and number <= MAX_ID else "0"
        reader = self._fanouts.known(owner_id)
        if reader is None:
            start = await asyncio.to_thread(self.last_id, owner_id) or "0"
            reader = self._fanouts.get(owner_id, start, lambda c: self._poll(owner_id, c, 5.0))

        async def read_now(c: str) -> list[Event]:
            return await asyncio.to_thread(self._fetch, owner_id, int(c))

        return await reader.read(cursor, block_seconds, read_now)


class RedisEventBus:
    """Events in one Redis Stream per owner; readers block on XREAD."""

    def __init__(self, url: str, namespace: str = "segue", topic: Topic = RENDERS) -> None:
        import redis
        import redis.asyncio

        self.url = url
        self.namespace = namespace
        self.topic = topic
        # Bounded timeouts: an unreachable server is an error within seconds, and publish retries it.
        self._sync = redis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=5, socket_timeout=10
        )
        self._async_client: Any = None
        self._async_module = redis.asyncio
        self._errors = (redis.ConnectionError, redis.TimeoutError)
        self._fanouts = _Fanouts()

    def stream_key(self, owner_id: int) -> str:
        return f"{self.namespace}:{self.topic.kind}:{owner_id}:events"

    def publish(self, event: Any) -> str:
        """Append the event; while Redis is away, retry with backoff for up to SEGUE_PUBLISH_RETRY_SECONDS
        (a render pauses through a blip instead of failing). Previews are dropped instead: the next one
        follows a few steps later."""
        key = self.stream_key(self.topic.owner_of(event))
        fields = {"name": event.name, "data": json.dumps(event.payload())}
        deadline = time.monotonic() + (0.0 if event.name == "preview" else _retry_budget())
        delay = 0.1
        while True:
            try:
                pipe = self._sync.pipeline()
                pipe.xadd(key, fields)  # type: ignore[arg-type]
                pipe.expire(key, STREAM_TTL_SECONDS)
                event_id, _ = pipe.execute()
                return str(event_id)
            except self._errors as exc:
                if event.name == "preview":
                    log.info("dropped a preview of %s: %s", key, exc)
                    return ""
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("publishing to %s failed (%s); retrying in %.1f s", key, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def last_id(self, owner_id: int) -> str | None:
        try:
            newest = self._sync.xrevrange(self.stream_key(owner_id), count=1)
        except self._errors as exc:  # Redis away: a page is still drawn, its stream starts from the top
            log.warning("could not read the newest event of %s: %s", self.stream_key(owner_id), exc)
            return None
        return str(newest[0][0]) if newest else None

    def _clients(self) -> tuple[Any, Any]:
        """(waiting, quick) async clients of this event loop (a client is bound to the loop that made it).

        The waiting one holds one blocking XREAD per followed stream (Fanout); quick reads share a bounded
        pool and queue for a connection rather than fail when many viewers read at once.
        """
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_client[0] is not loop:
            module = self._async_module
            # The socket timeout must outlast the XREAD block, or a quiet stream reads as a dead server.
            waiting = module.Redis.from_url(
                self.url, decode_responses=True, socket_timeout=60, max_connections=10_000
            )
            pool = module.BlockingConnectionPool.from_url(
                self.url, decode_responses=True, socket_timeout=30, max_connections=32, timeout=30
            )
            self._async_client = (loop, waiting, module.Redis(connection_pool=pool))
        return self._async_client[1], self._async_client[2]

    def _client(self) -> Any:
        return self._clients()[0]

    async def _xread(self, client: Any, owner_id: int, after: str, block_ms: int | None) -> list[Event]:
        reply = await client.xread({self.stream_key(owner_id): after}, count=500, block=block_ms)
        return self._events(reply)

    async def read(self, owner_id: int, after: str | None, block_seconds: float) -> list[Event]:
        """One blocking XREAD per stream in this process (Fanout); each viewer reads after its own cursor."""
        waiting, quick = self._clients()
        # A client's own Last-Event-ID that is no stream id would fail every XREAD: read from the start.
        cursor = after if after is not None and _is_stream_id(after) else "0-0"
        reader = self._fanouts.known(owner_id)
        if reader is None:
            start = await asyncio.to_thread(self.last_id, owner_id) or "0-0"
            reader = self._fanouts.get(owner_id, start, lambda c: self._xread(waiting, owner_id, c, 5000))
        return await reader.read(cursor, block_seconds, lambda c: self._xread(quick, owner_id, c, None))

    def _events(self, reply: Any) -> list[Event]:
        events = []
        for _key, entries in reply or []:
            for event_id, fields in entries:
                events.append(
                    Event(str(event_id), self.topic.parse(fields["name"], json.loads(fields["data"])))
                )
        return events


@lru_cache
def _bus_for(
    mode: str,
    redis_url: str,
    namespace: str,
    poll_seconds: float,
    database_url: str,
    doorbell: bool,
    topic: Topic,
) -> EventBus:
    if mode == "distributed":
        return RedisEventBus(redis_url, namespace, topic)
    return SqlEventBus(topic, poll_seconds, database_url, doorbell)


def get_bus(settings: Settings | None = None, topic: Topic = RENDERS) -> EventBus:
    """The render events bus (or, with topic=TRANSITIONS, the co-viewing channel of transitions)."""
    s = settings or get_settings()
    return _bus_for(
        s.mode, s.redis_url, s.redis_namespace, s.event_poll_seconds, s.database_url, s.doorbell, topic
    )
