"""Every failure is visible, and a render's life ends cleanly (issue 13, findings 2, 6 and 9).

- an error after the engine rendered (here: the frame store cannot take one frame) marks the frames and the
  render `failed` with the reason; the page shows it with a Retry button; retry queues only the missing
  frames, and the render then finishes with every frame announced exactly once;
- deleting a transition cancels its renders, ends their open event streams with a final event, and
  leaves the worker healthy;
- events go with their render, and ids are never reused (SQLite too).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.sse import read_sse
from tests.support.waiting import wait_for

CITY = "a futuristic cityscape"
FOREST = "a girl in a magical forest"


def _transition(client: Any, **overrides: Any) -> dict[str, Any]:
    body = {"start_prompt": CITY, "end_prompt": FOREST, "frames": 6, "seed": 3, "steps": 2, "batch_size": 2}
    response = client.post("/api/transitions", json={**body, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


def _frame_keys(transition_id: int) -> list[str]:
    """The content keys the render of this transition will store its frames under (as start_render plans)."""
    from core.timeline import frame_keys
    from infra.db import new_session
    from infra.tables import Transition
    from services import noise_paths
    from services.rendering import snapshot

    with new_session() as db:
        params = snapshot(db.get(Transition, transition_id))
    return frame_keys(params.pixels(), noise_paths.plan(params), params.model_revision)


@pytest.mark.redis
def test_a_failed_frame_store_write_fails_the_render_visibly_and_retry_queues_only_the_missing_frames(
    stack_factory: Any, tmp_path: Path
) -> None:
    from infra.storage import get_store

    stack = stack_factory(mode="distributed", database="sqlite")
    client = stack.client
    transition = _transition(client)
    keys = _frame_keys(transition["id"])
    # Frame 3 cannot be stored: a directory sits where its file goes (root is not stopped by permissions).
    blocked = get_store().path(keys[3])
    blocked.mkdir(parents=True)

    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
    first = read_sse(client, f"/api/renders/{render_id}/events")
    assert first[-1]["event"] == "failed", stack.log.read_text()[-3000:]
    detail = client.get(f"/api/renders/{render_id}").json()
    assert detail["status"] == "failed"
    assert "could not store frame" in detail["error"] and "Is a directory" in detail["error"]
    assert json.loads(first[-1]["data"])["error"] == detail["error"]
    statuses = {f["index"]: f["status"] for f in detail["frames"]}
    assert statuses[3] == "failed"
    done_before = {i for i, s in statuses.items() if s == "done"}
    assert 0 < len(done_before) < 6, statuses  # the batches before it landed; the rest is missing

    # The page shows the reason and a Retry button.
    page = client.get(f"/transitions/{transition['id']}?render={render_id}").text
    assert "could not store frame" in page and 'id="retry-button"' in page

    blocked.rmdir()
    retried = client.post(f"/api/renders/{render_id}/retry")
    assert retried.status_code == 202, retried.text
    assert retried.json()["status"] in ("queued", "running", "done")
    wait_for(
        lambda: client.get(f"/api/renders/{render_id}").json()["status"] == "done",
        what="the retried render to finish",
    )
    final = client.get(f"/api/renders/{render_id}").json()
    assert final["error"] is None and all(f["status"] == "done" for f in final["frames"])
    assert final["stats"]["frames_computed"] == 6  # every frame once: the retry rendered only the missing

    # Read from the start, the stream skips the superseded `failed` and announces each frame exactly once.
    everything = read_sse(client, f"/api/renders/{render_id}/events")
    assert everything[-1]["event"] == "done"
    announced = Counter(json.loads(e["data"])["index"] for e in everything if e["event"] == "frame")
    assert announced == Counter(range(6)), announced
    # A finished render is not retried again.
    again = client.post(f"/api/renders/{render_id}/retry")
    assert again.status_code == 422 and "only a failed or cancelled render" in again.text


@pytest.mark.parametrize("mode", [pytest.param("distributed", marks=pytest.mark.redis), "embedded"])
def test_deleting_a_transition_cancels_its_renders_ends_their_streams_and_the_worker_carries_on(
    stack_factory: Any, mode: str
) -> None:
    stack = stack_factory(mode=mode, database="sqlite")
    client = stack.client
    slow = _transition(client, frames=40, steps=20, batch_size=1, width=128, height=128)
    render_id = client.post(f"/api/transitions/{slow['id']}/renders").json()["id"]
    wait_for(
        lambda: client.get(f"/api/renders/{render_id}").json()["status"] == "running",
        what="the render to start",
    )
    seen: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=lambda: seen.extend(read_sse(client, f"/api/renders/{render_id}/events")), daemon=True
    )
    reader.start()
    from infra.watching import watched

    # The stream marks its render watched as it starts reading: then it is open, and the deletion ends it.
    wait_for(lambda: watched(render_id), timeout=30, what="the render's event stream to be open")

    assert client.delete(f"/api/transitions/{slow['id']}").status_code == 204
    reader.join(timeout=30)
    assert not reader.is_alive(), "the stream of the deleted render did not end"
    assert seen and seen[-1]["event"] == "cancelled"
    assert client.get(f"/api/renders/{render_id}").status_code == 404
    # A stream opened afterwards is a 404, not a stream that never ends.
    assert client.get(f"/api/renders/{render_id}/events").status_code == 404

    # The worker is healthy: it drops the vanished render's batch and renders the next transition.
    quick = _transition(client, frames=2, steps=2)
    new_id = client.post(f"/api/transitions/{quick['id']}/renders").json()["id"]
    assert new_id > render_id  # ids are never reused
    events = read_sse(client, f"/api/renders/{new_id}/events")
    assert events[-1]["event"] == "done", stack.log.read_text()[-3000:]
    assert {json.loads(e["data"])["render_id"] for e in events} == {new_id}
    assert stack.worker.poll() is None
    log = stack.log.read_text()
    assert "AssertionError" not in log and "Traceback" not in log, log[-3000:]


def test_events_go_with_their_render_and_ids_are_never_reused(client: Any, database: str) -> None:
    from sqlalchemy import func, select

    from core import events
    from infra.bus import get_bus
    from infra.db import new_session
    from infra.tables import Frame, RenderEventRow

    first = _transition(client, frames=3)
    render_id = client.post(f"/api/transitions/{first['id']}/renders").json()["id"]
    get_bus().publish(events.Done(render_id=render_id))
    with new_session() as db:
        frame_ids = set(db.scalars(select(Frame.id).where(Frame.render_id == render_id)))
        assert db.scalar(select(func.count()).where(RenderEventRow.render_id == render_id)) >= 1
    assert client.delete(f"/api/transitions/{first['id']}").status_code == 204
    with new_session() as db:
        assert db.scalar(select(func.count()).where(RenderEventRow.render_id == render_id)) == 0

    second = _transition(client, frames=3)
    assert second["id"] > first["id"]
    new_render = client.post(f"/api/transitions/{second['id']}/renders").json()["id"]
    assert new_render > render_id
    with new_session() as db:
        assert not frame_ids & set(db.scalars(select(Frame.id).where(Frame.render_id == new_render)))
    # The new render's stream holds its own events only: no old `done` replayed while it is queued.
    get_bus().publish(events.Cancelled(render_id=new_render))
    replay = read_sse(client, f"/api/renders/{new_render}/events")
    assert [e["event"] for e in replay][-1] == "cancelled"
    assert all(json.loads(e["data"])["render_id"] == new_render for e in replay)
    assert "done" not in [e["event"] for e in replay]


@pytest.mark.redis
def test_a_small_render_is_not_starved_by_a_big_one_started_before_it(stack_factory: Any) -> None:
    """Batches carry a priority by their place in their render (infra/queue.batch_priority): an 8-frame
    render started after a long one overtakes the long one's tail instead of waiting for all of it."""
    stack = stack_factory(mode="distributed", database="sqlite")
    client = stack.client
    big = _transition(client, frames=30, steps=3, batch_size=1, seed=1)
    small = _transition(client, frames=4, steps=3, batch_size=1, seed=2, end_prompt="a desert at noon")
    big_id = client.post(f"/api/transitions/{big['id']}/renders").json()["id"]
    small_id = client.post(f"/api/transitions/{small['id']}/renders").json()["id"]
    wait_for(
        lambda: client.get(f"/api/renders/{small_id}").json()["status"] == "done",
        timeout=180,
        interval=0.05,
        what="the small render",
    )
    big_detail = client.get(f"/api/renders/{big_id}").json()
    done = sum(1 for f in big_detail["frames"] if f["status"] == "done")
    # Without priorities the small render would wait for all 30; with them, for the big one's first
    # 2 batches (and the one a worker had already taken).
    assert done <= 8, f"the big render had {done} of 30 frames done when the small one finished"
    assert big_detail["status"] == "running"
    wait_for(lambda: client.get(f"/api/renders/{big_id}").json()["status"] == "done", timeout=300)


@pytest.mark.redis
def test_cancel_stops_a_running_batch_between_two_denoising_steps(stack_factory: Any) -> None:
    """Live: a Cancel pressed while a batch denoises stops it part-way, with nothing stored. How soon (the
    step after the worker's next cancel read, every CANCEL_POLL_SECONDS) is proved on a clock the test
    controls in tests/worker/test_overlap.py; here no wall-clock bound, which a loaded machine can miss."""
    stack = stack_factory(mode="distributed", database="sqlite")
    client = stack.client
    total = 60
    slow = _transition(client, frames=2, steps=total, batch_size=1, width=256, height=256)
    render_id = client.post(f"/api/transitions/{slow['id']}/renders").json()["id"]
    previews: list[int] = []
    kinds: list[str] = []

    def watch() -> None:
        with client.stream("GET", f"/api/renders/{render_id}/events") as response:
            for line in response.iter_lines():
                if line.startswith("data:") and '"step"' in line:
                    previews.append(json.loads(line[5:])["step"])
                if line.startswith("event:"):
                    kinds.append(line.split(":", 1)[1].strip())
                    if kinds[-1] in ("cancelled", "done"):
                        return

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    wait_for(lambda: len(previews) >= 2, timeout=120, interval=0.05, what="two previews")
    assert client.post(f"/api/renders/{render_id}/cancel").status_code == 200
    stopped = re.compile(
        rf"render {render_id} cancelled during batch \[\d+\]: cancelled after step (\d+) of {total}\n"
    )
    wait_for(
        lambda: stopped.search(stack.log.read_text()), timeout=60, interval=0.05, what="the batch to stop"
    )
    step = int(stopped.search(stack.log.read_text()).group(1))  # type: ignore[union-attr]
    assert previews[1] <= step < total  # after the previews seen before Cancel, before the last step
    reader.join(timeout=30)
    assert kinds[-1] == "cancelled" and "frame" not in kinds
    assert max(previews) <= step  # no preview of a step the worker did not run
    detail = client.get(f"/api/renders/{render_id}").json()
    assert detail["status"] == "cancelled" and detail["stats"]["frames_computed"] == 0
