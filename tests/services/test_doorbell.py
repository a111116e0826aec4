"""The embedded mode's pollers wake when news is written, not when their interval ends (infra/doorbell.py).

Each wait below is given an interval far longer than the test's own bound (60 s against 20 s): a ring
that works ends it at once, one that does not fails the bound. No test depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from infra.doorbell import Doorbell
from tests.support.isolation import file_broker
from tests.support.waiting import wait_for

LONG = 60.0  # a poll interval no test could sit out
BOUND = 20.0  # how long a test waits for what a ring should bring at once


def bell() -> Doorbell:
    return Doorbell(f"test {uuid.uuid4()}")


def in_thread(target: object) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_a_ring_wakes_a_waiting_listener_and_a_ring_before_the_wait_counts() -> None:
    doorbell = bell()
    with doorbell.listen() as listener:
        assert listener.ringing_works
        assert listener.wait(0) is False  # nothing rang
        assert doorbell.ring() == 1
        assert listener.wait(0) is True  # rung before the wait
        assert listener.wait(0) is False  # and each ring is taken once

        woke: list[bool] = []
        waiter = in_thread(lambda: woke.append(listener.wait(LONG)))
        doorbell.ring()
        waiter.join(BOUND)
        assert woke == [True]


def test_only_the_listeners_at_the_rung_door_wake() -> None:
    doorbell = bell()
    with doorbell.listen("7") as seven, doorbell.listen("8") as eight, doorbell.listen("7") as other_seven:
        assert doorbell.ring("7") == 2
        assert seven.wait(0) and other_seven.wait(0)
        assert eight.wait(0) is False


def test_a_socket_left_by_a_dead_process_is_removed_and_a_closed_listener_leaves_nothing() -> None:
    doorbell = bell()
    listener = doorbell.listener()
    assert listener._sock is not None and listener._path is not None
    left = listener._path
    listener._sock.close()  # the process died: its socket file is still there, nobody reads it
    assert left.exists()
    assert doorbell.ring() == 0
    assert not left.exists()

    with doorbell.listen():
        assert doorbell.folder.is_dir()
    assert not doorbell.folder.exists()  # the last listener leaves no socket and no folder behind
    assert Doorbell(f"test {uuid.uuid4()}").ring() == 0  # nobody ever listened: no folder, no error


def test_where_no_socket_can_be_made_the_listener_sleeps_its_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doorbell = bell()
    monkeypatch.setattr(doorbell, "folder", Path("/tmp") / ("x" * 120))  # longer than a socket path may be
    with doorbell.listen() as listener:
        assert not listener.ringing_works
        assert doorbell.ring() == 0
        assert listener.wait(0.01) is False


def test_an_async_waiter_wakes_on_a_ring_from_another_thread() -> None:
    doorbell = bell()

    async def wait() -> bool:
        with doorbell.listen("3") as listener:
            in_thread(lambda: doorbell.ring("3"))
            return await asyncio.wait_for(listener.wait_async(LONG), BOUND)

    assert asyncio.run(wait()) is True


def test_a_stream_reads_an_event_as_it_is_published_not_at_its_next_poll(database: str) -> None:
    from core import events
    from infra.bus import SqlEventBus
    from infra.config import get_settings

    bus = SqlEventBus(poll_seconds=LONG, database_url=get_settings().database_url)
    render_id = new_render()

    fetch, looked = bus._fetch, threading.Event()

    def fetch_and_tell(owner_id: int, after: int) -> list[Any]:
        found = fetch(owner_id, after)
        looked.set()
        return found

    bus._fetch = fetch_and_tell  # type: ignore[method-assign]

    async def read_while_published() -> list[object]:
        start = await asyncio.to_thread(bus.last_id, render_id) or "0"
        reading = asyncio.ensure_future(bus._poll(render_id, start, LONG))
        await asyncio.to_thread(looked.wait)  # the poller has read and found nothing: it waits now
        await asyncio.to_thread(bus.publish, events.Cancelled(render_id=render_id))
        return [item.event for item in await asyncio.wait_for(reading, BOUND)]

    (event,) = asyncio.run(read_while_published())
    assert isinstance(event, events.Cancelled) and event.render_id == render_id


def test_the_embedded_worker_takes_a_message_as_it_is_put_not_at_its_next_poll(tmp_path: Path) -> None:
    options = file_broker(tmp_path, polling_interval=LONG)
    with Connection("filesystem://", transport_options=options) as consumer_side:
        queue = consumer_side.SimpleQueue("doorbell-test")
        got: list[object] = []
        consumer = in_thread(lambda: got.append(queue.get(timeout=LONG).payload))
        # The consumer is waiting (it listens before it looks at the empty folder) before the message is put.
        wait_for(
            lambda: consumer_side.transport._listener is not None,
            timeout=BOUND,
            interval=0.01,
            what="the consumer to listen on the queue's doorbell",
        )
        with Connection("filesystem://", transport_options=options) as producer_side:
            producer_side.SimpleQueue("doorbell-test").put({"render": 3})
        consumer.join(BOUND)
        assert got == [{"render": 3}]
        queue.close()


def new_render() -> int:
    from infra.db import new_session
    from infra.tables import Render, Transition

    with new_session() as db:
        transition = Transition(model="segue-tiny", title="doorbell")
        db.add(transition)
        db.flush()
        render = Render(transition_id=transition.id, transition_version=1, params={}, model="segue-tiny")
        db.add(render)
        db.commit()
        return int(render.id)


def test_off_nothing_rings_and_pollers_only_sleep(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from infra import fsqueue
    from infra.bus import get_bus
    from tests.support.isolation import configure, reset_caches

    configure(monkeypatch, tmp_path / "data", doorbell="false")
    for doorbell in (get_bus().doorbell, fsqueue.doorbell(str(tmp_path))):  # type: ignore[attr-defined]
        assert doorbell.enabled is False
        with doorbell.listen() as listener:
            assert not listener.ringing_works
            assert doorbell.ring() == 0
    monkeypatch.delenv("SEGUE_DOORBELL")
    reset_caches()
    assert get_bus().doorbell.enabled is True  # type: ignore[attr-defined]
