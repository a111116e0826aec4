"""Renders through the whole spine: API → database → Celery broker → worker process → frame store → SSE."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.live import render_and_stream, small_transition
from tests.support.sse import read_sse
from tests.support.waiting import wait_for

pytestmark = pytest.mark.redis


#: The JSON stream's wire format as outside clients read it (the payload keys the pre-refactor code sent).
WIRE_FORMAT = {
    "frame": {"render_id", "index", "t", "url", "reused", "seconds"},
    "progress": {"render_id", "status", "done", "total", "fraction"},
    "preview": {"render_id", "indices", "step", "steps", "images"},
    "done": {"render_id", "stats"},
}
STATS_KEYS = {"frames_total", "frames_computed", "frames_reused", "seconds"}


def _assert_wire_format(events: list[dict[str, Any]]) -> None:
    seen = set()
    for event in events:
        data = json.loads(event["data"])
        assert set(data) == WIRE_FORMAT[event["event"]], event
        if event["event"] == "done":
            assert set(data["stats"]) == STATS_KEYS
        seen.add(event["event"])
    assert seen >= {"frame", "progress", "done"}


def _check_frames_on_disk(detail: dict[str, Any], data_dir: Path) -> None:
    for frame in detail["frames"]:
        assert frame["status"] == "done" and frame["url"]
        path = data_dir / "frames" / frame["url"].removeprefix("/media/frames/")
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            assert image.size == (64, 64)


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_distributed_render_streams_every_frame_once_and_resumes(
    stack_factory: Any, database: str, tmp_path: Path
) -> None:
    stack = stack_factory(mode="distributed", database=database)
    client = stack.client
    transition = small_transition(client)
    detail, events = render_and_stream(client, transition["id"])

    assert detail["status"] == "done", stack.log.read_text()[-3000:]
    frame_indices = [json.loads(e["data"])["index"] for e in events if e["event"] == "frame"]
    assert sorted(frame_indices) == list(range(6))  # each frame exactly once
    assert frame_indices[:2] == [0, 5]  # coarse to fine: both ends first
    assert any(e["event"] == "progress" for e in events)
    assert events[-1]["event"] == "done"
    assert detail["stats"]["frames_computed"] == 6 and detail["stats"]["frames_reused"] == 0
    _check_frames_on_disk(detail, tmp_path / "data")

    # A browser that lost the connection after the third event gets exactly the rest.
    resume_from = events[2]["id"]
    rest = read_sse(client, f"/api/renders/{detail['id']}/events", {"Last-Event-ID": resume_from})
    assert [e["id"] for e in rest] == [e["id"] for e in events[3:]]

    # The page reports which model rendered the frames.
    page = client.get(f"/frames/{detail['id']}/2")
    assert "segue-tiny" in page.text


def test_embedded_mode_renders_without_any_server(stack_factory: Any, tmp_path: Path) -> None:
    stack = stack_factory(mode="embedded", database="sqlite")
    client = stack.client
    transition = small_transition(client, frames=4, batch_size=2)
    detail, events = render_and_stream(client, transition["id"])
    assert detail["status"] == "done", stack.log.read_text()[-3000:]
    assert sorted(json.loads(e["data"])["index"] for e in events if e["event"] == "frame") == [0, 1, 2, 3]
    _assert_wire_format(events)
    _check_frames_on_disk(detail, tmp_path / "data")
    # The embedded broker keeps all its files in the data dir, none in the working directory.
    assert (tmp_path / "data" / "broker" / "control").is_dir()
    assert not (Path(__file__).resolve().parents[2] / "control").exists()

    # An inserted keyframe re-renders only what changed: the two endpoint frames are reused.
    client.post(
        f"/api/transitions/{transition['id']}/keyframes", json={"position": 0.5, "prompt": "a city garden"}
    )
    again, events = render_and_stream(client, transition["id"])
    assert again["status"] == "done"
    assert again["stats"]["frames_reused"] == 2 and again["stats"]["frames_computed"] == 2
    assert [f["url"] for f in again["frames"]][0] == detail["frames"][0]["url"]
    assert sorted(json.loads(e["data"])["index"] for e in events if e["event"] == "frame") == [0, 1, 2, 3]


def test_cancel_stops_a_running_render(stack_factory: Any) -> None:
    stack = stack_factory(mode="distributed", database="sqlite")
    client = stack.client
    transition = small_transition(client, frames=40, steps=20, batch_size=1, width=128, height=128)
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
    wait_for(
        lambda: client.get(f"/api/renders/{render_id}").json()["status"] == "running",
        what="the render to start",
    )
    response = client.post(f"/api/renders/{render_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    events = read_sse(client, f"/api/renders/{render_id}/events")
    assert events[-1]["event"] == "cancelled"
    detail = client.get(f"/api/renders/{render_id}").json()
    assert detail["stats"]["frames_computed"] < 40
    # The worker is free again: it skips the cancelled batches and renders the next request.
    quick = small_transition(client, frames=2, steps=2)
    done, _ = render_and_stream(client, quick["id"])
    assert done["status"] == "done", stack.log.read_text()[-3000:]
