"""Renders through a live stack (tests/support/stack.py): a transition, its render and event stream, and what
a test of crashes and recovery checks afterwards."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image

from tests.support.sse import read_sse

CITY = "a futuristic cityscape"


FOREST = "a girl in a magical forest"


def small_transition(client: Any, **overrides: Any) -> dict[str, Any]:
    body = {
        "start_prompt": CITY,
        "end_prompt": FOREST,
        "frames": 6,
        "seed": 3,
        "steps": 3,
        "batch_size": 3,
        **overrides,
    }
    response = client.post("/api/transitions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def render_and_stream(client: Any, transition_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    render = client.post(f"/api/transitions/{transition_id}/renders")
    assert render.status_code == 202, render.text
    render_id = render.json()["id"]
    events = read_sse(client, f"/api/renders/{render_id}/events")
    return client.get(f"/api/renders/{render_id}").json(), events


#: Short leases so a test waits seconds, not the production 30 s.
FAST_RECOVERY = {
    "SEGUE_LEASE_SECONDS": "4",
    "SEGUE_REAP_SECONDS": "1",
    "SEGUE_HEARTBEAT_SECONDS": "1",
}


def new_transition(client: Any, **overrides: Any) -> dict[str, Any]:
    body = {"start_prompt": "a futuristic cityscape", "end_prompt": "a girl in a magical forest", **overrides}
    response = client.post("/api/transitions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def running_frames(detail: dict[str, Any]) -> list[int]:
    return [f["index"] for f in detail["frames"] if f["status"] == "running"]


def check_every_frame_once(detail: dict[str, Any], events: list[dict[str, Any]], data_dir: Path) -> None:
    total = len(detail["frames"])
    assert detail["status"] == "done", detail
    assert detail["stats"]["frames_computed"] == total, detail["stats"]
    announced = Counter(json.loads(e["data"])["index"] for e in events if e["event"] == "frame")
    assert announced == Counter(range(total)), f"frame events per index: {announced}"
    assert [e["event"] for e in events].count("done") == 1
    for frame in detail["frames"]:  # no half-written file: every image decodes whole
        path = data_dir / "frames" / frame["url"].removeprefix("/media/frames/")
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            image.load()
