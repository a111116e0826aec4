"""The JSON API against a real database (SQLite and PostgreSQL); render batches are recorded, not run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.sse import read_sse

CITY = "A futuristic cityscape, vibrant and detailed"
FOREST = "A girl in a magical forest"


def create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    body = {"start_prompt": CITY, "end_prompt": FOREST, "frames": 6, "seed": 42, "steps": 4, **overrides}
    response = client.post("/api/transitions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_read_list_and_edit_a_transition(client: TestClient) -> None:
    created = create(client, title="City to forest", guidance_scale=6.0, text_interpolation="slerp")
    assert created["version"] == 1
    assert [(k["position"], k["prompt"]) for k in created["keyframes"]] == [(0.0, CITY), (1.0, FOREST)]
    assert created["text_interpolation"] == "slerp" and created["guidance_scale"] == 6.0
    assert created["width"] == created["height"] == 64  # the built-in model's size by default

    fetched = client.get(f"/api/transitions/{created['id']}").json()
    assert fetched["title"] == "City to forest"
    assert [t["id"] for t in client.get("/api/transitions").json()] == [created["id"]]

    patched = client.patch(
        f"/api/transitions/{created['id']}", json={"end_prompt": "a quiet sea", "frames": 12}
    )
    assert patched.status_code == 200
    body = patched.json()
    assert body["version"] == 2 and body["frames"] == 12 and body["keyframes"][-1]["prompt"] == "a quiet sea"


@pytest.mark.parametrize(
    ("override", "field", "needle"),
    [
        ({"start_prompt": "   "}, "start_prompt", "must not be empty"),
        ({"frames": 1}, "frames", "between 2 and 600"),
        ({"frames": 601}, "frames", "between 2 and 600"),
        ({"steps": 0}, "steps", "between 1 and 150"),
        ({"steps": 151}, "steps", "between 1 and 150"),
        ({"guidance_scale": 31}, "guidance_scale", "between 0 and 30"),
        ({"guidance_scale": -1}, "guidance_scale", "between 0 and 30"),
        ({"width": 100}, "width", "multiple of 8"),
        ({"height": 2048}, "height", "between 64 and 1024"),
        ({"model": "nope/unknown"}, "model", "choose one of: segue-tiny"),
        ({"scheduler": "plms"}, "scheduler", "dpmsolver"),
        ({"text_interpolation": "cubic"}, "text_interpolation", "lerp"),
        ({"batch_size": 0}, "batch_size", "between 1 and 16"),
        ({"seed": -5}, "seed", "between 0 and"),
        ({"frames": "many"}, "frames", "integer"),
        ({"end_prompt": None}, "end_prompt", "string"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_nothing_is_saved(
    client: TestClient, override: dict[str, Any], field: str, needle: str
) -> None:
    body = {"start_prompt": CITY, "end_prompt": FOREST, **override}
    response = client.post("/api/transitions", json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["detail"][0]["field"] == field
    assert needle in payload["errors"][field]
    assert client.get("/api/transitions").json() == []


def test_non_finite_guidance_is_refused(client: TestClient) -> None:
    raw = json.dumps({"start_prompt": CITY, "end_prompt": FOREST}).replace("}", ', "guidance_scale": NaN}')
    response = client.post("/api/transitions", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "guidance_scale" in response.json()["errors"]


def test_a_bad_patch_changes_nothing(client: TestClient) -> None:
    created = create(client)
    response = client.patch(f"/api/transitions/{created['id']}", json={"title": "new title", "steps": 999})
    assert response.status_code == 422 and "steps" in response.json()["errors"]
    after = client.get(f"/api/transitions/{created['id']}").json()
    assert after["title"] == created["title"] and after["version"] == 1


def test_keyframes_split_the_timeline_into_segments(client: TestClient) -> None:
    created = create(client, frames=11)
    tid = created["id"]
    response = client.post(
        f"/api/transitions/{tid}/keyframes", json={"position": 0.4, "prompt": "a girl in a city garden"}
    )
    assert response.status_code == 201
    keyframe = response.json()
    assert keyframe["position"] == 0.4

    for bad, needle in [
        ({"position": 0.4, "prompt": "again"}, "taken"),
        ({"position": 0.0, "prompt": "x"}, "strictly between 0 and 1"),
        ({"position": 1.5, "prompt": "x"}, "strictly between 0 and 1"),
        ({"position": 0.5, "prompt": ""}, "must not be empty"),
    ]:
        r = client.post(f"/api/transitions/{tid}/keyframes", json=bad)
        assert r.status_code == 422, bad
        assert needle in next(iter(r.json()["errors"].values()))

    transition = client.get(f"/api/transitions/{tid}").json()
    assert [k["position"] for k in transition["keyframes"]] == [0.0, 0.4, 1.0]
    assert transition["version"] == 2

    moved = client.patch(f"/api/keyframes/{keyframe['id']}", json={"position": 0.6})
    assert moved.status_code == 200 and moved.json()["position"] == 0.6
    start = transition["keyframes"][0]
    assert client.patch(f"/api/keyframes/{start['id']}", json={"position": 0.2}).status_code == 422
    assert client.delete(f"/api/keyframes/{start['id']}").status_code == 422
    assert client.delete(f"/api/keyframes/{keyframe['id']}").status_code == 204
    assert len(client.get(f"/api/transitions/{tid}").json()["keyframes"]) == 2


def test_render_plans_frames_and_queues_coarse_to_fine_batches(
    client: TestClient, sent_tasks: list[tuple[int, list[int]]]
) -> None:
    created = create(client, frames=7, batch_size=3)
    client.post(f"/api/transitions/{created['id']}/keyframes", json={"position": 0.5, "prompt": "a garden"})
    response = client.post(f"/api/transitions/{created['id']}/renders")
    assert response.status_code == 202
    render = response.json()
    assert render["status"] == "queued" and render["transition_version"] == 2

    assert [indices for _, indices in sent_tasks] == [[0, 6, 3], [1, 4, 2], [5]]
    detail = client.get(f"/api/renders/{render['id']}").json()
    assert [f["index"] for f in detail["frames"]] == list(range(7))
    assert {f["status"] for f in detail["frames"]} == {"pending"}
    assert detail["frames"][3]["prompt_a"] == "a garden" and detail["frames"][3]["local_t"] == 0.0
    assert detail["frames"][1]["segment"] == 0 and detail["frames"][5]["segment"] == 1
    assert detail["stats"] == {"frames_total": 7, "frames_computed": 0, "frames_reused": 0, "seconds": None}


def test_a_render_keeps_the_version_it_was_started_with(client: TestClient) -> None:
    created = create(client, frames=4)
    render = client.post(f"/api/transitions/{created['id']}/renders").json()
    client.patch(f"/api/transitions/{created['id']}", json={"end_prompt": "a desert", "seed": 1})
    detail = client.get(f"/api/renders/{render['id']}").json()
    assert detail["transition_version"] == 1
    assert detail["frames"][-1]["prompt_b"] == FOREST


def test_unchanged_frames_are_reused_by_the_next_render(client: TestClient, sent_tasks: list[Any]) -> None:
    from infra.db import session_scope
    from infra.storage import get_store
    from infra.tables import Frame

    created = create(client, frames=5)
    first = client.post(f"/api/transitions/{created['id']}/renders").json()
    # Pretend a worker finished the first render.
    with session_scope() as db:
        for frame in db.query(Frame).filter(Frame.render_id == first["id"]):
            get_store().write(frame.key, b"png")
            frame.status = "done"
    # A keyframe at 0.5 changes every blended frame, but not the two endpoint frames.
    client.post(f"/api/transitions/{created['id']}/keyframes", json={"position": 0.5, "prompt": "a garden"})
    sent_tasks.clear()
    second = client.post(f"/api/transitions/{created['id']}/renders").json()
    detail = client.get(f"/api/renders/{second['id']}").json()
    reused = [f["index"] for f in detail["frames"] if f["reused"]]
    assert reused == [0, 4]
    assert detail["stats"]["frames_reused"] == 2
    assert sorted(i for _, batch in sent_tasks for i in batch) == [1, 2, 3]
    assert detail["frames"][0]["url"].startswith("/media/frames/")


def test_cancel_a_queued_render(client: TestClient) -> None:
    created = create(client)
    render = client.post(f"/api/transitions/{created['id']}/renders").json()
    response = client.post(f"/api/renders/{render['id']}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled"
    assert {f["status"] for f in body["frames"]} == {"cancelled"}
    again = client.post(f"/api/renders/{render['id']}/cancel")
    assert again.status_code == 422 and "already cancelled" in again.json()["errors"]["status"]


def test_missing_things_are_404(client: TestClient) -> None:
    assert client.get("/api/transitions/999").status_code == 404
    assert client.get("/api/renders/999").status_code == 404
    assert client.get("/api/renders/999/events").status_code == 404
    assert client.patch("/api/keyframes/999", json={"prompt": "x"}).status_code == 404


def test_health_reports_database_broker_and_workers(client: TestClient) -> None:
    # No worker runs beside this app: Segue cannot render, and /healthz says so (503, naming it).
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503 and body["status"] == "degraded"
    assert body["database"]["ok"] is True and body["broker"]["ok"] is True
    assert body["down"] == ["no worker alive"] and body["workers"]["alive"] == 0
    assert body["mode"] == "embedded"


def test_event_stream_resumes_after_last_event_id(client: TestClient) -> None:
    from core import events
    from infra.bus import get_bus

    created = create(client, frames=3)
    render = client.post(f"/api/transitions/{created['id']}/renders").json()
    bus = get_bus()
    for index in range(3):
        bus.publish(
            events.FrameDone(
                render_id=render["id"], index=index, t=index / 2, url="x", reused=False, seconds=0.5
            )
        )
    bus.publish(events.Done(render_id=render["id"]))

    everything = read_sse(client, f"/api/renders/{render['id']}/events")
    frames = [json.loads(e["data"])["index"] for e in everything if e["event"] == "frame"]
    assert frames == [0, 1, 2]
    assert everything[-1]["event"] == "done"
    ids = [e["id"] for e in everything]
    assert len(set(ids)) == len(ids)

    first_frame = next(e for e in everything if e["event"] == "frame")
    rest = read_sse(client, f"/api/renders/{render['id']}/events", {"Last-Event-ID": first_frame["id"]})
    assert [json.loads(e["data"])["index"] for e in rest if e["event"] == "frame"] == [1, 2]
    assert rest[-1]["event"] == "done"
