"""Attention interpolation and Beta spacing through the API, the forms and the project file, rendered by the
worker code in-process on the tiny model (batches run as they are queued, no broker)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.inprocess import CITY, FOREST, create, render


def test_a_transition_takes_reports_and_clears_its_attention_settings(api: TestClient) -> None:
    created = create(api, attention_interpolation="fused", attention_steps=0.4)
    assert (created["attention_interpolation"], created["attention_steps"]) == ("fused", 0.4)
    plain = create(api)
    assert (plain["attention_interpolation"], plain["attention_steps"]) == ("none", 0.5)
    patched = api.patch(f"/api/transitions/{plain['id']}", json={"attention_interpolation": "outer"})
    assert patched.status_code == 200 and patched.json()["attention_interpolation"] == "outer"


@pytest.mark.parametrize(
    ("override", "field", "needle"),
    [
        (
            {"attention_interpolation": "sideways"},
            "attention_interpolation",
            "'none', 'inner', 'outer' or 'fused'",
        ),
        (
            {"attention_steps": 1.5},
            "attention_steps",
            "attention_steps must be a finite number between 0 and 1",
        ),
        ({"attention_steps": -0.1}, "attention_steps", "between 0 and 1"),
        ({"spacing": "gamma"}, "spacing", "'beta'"),
    ],
)
def test_bad_attention_settings_are_422_naming_the_field(
    api: TestClient, override: dict[str, Any], field: str, needle: str
) -> None:
    before = len(api.get("/api/transitions").json())
    response = api.post("/api/transitions", json={"start_prompt": CITY, "end_prompt": FOREST, **override})
    assert response.status_code == 422
    assert needle in response.json()["errors"][field]
    assert len(api.get("/api/transitions").json()) == before  # nothing half-saved


def test_a_keyframe_sets_its_segments_attention_and_the_end_keyframe_refuses_it(api: TestClient) -> None:
    t = create(api)
    start, end = api.get(f"/api/transitions/{t['id']}").json()["keyframes"]
    patched = api.patch(f"/api/keyframes/{start['id']}", json={"attention_interpolation": "inner"})
    assert patched.status_code == 200, patched.text
    assert api.get(f"/api/keyframes/{start['id']}").json()["attention_interpolation"] == "inner"
    refused = api.patch(f"/api/keyframes/{end['id']}", json={"attention_interpolation": "inner"})
    assert refused.status_code == 422
    assert "end keyframe starts none" in refused.json()["errors"]["attention_interpolation"]
    bad = api.patch(f"/api/keyframes/{start['id']}", json={"attention_interpolation": "half"})
    assert bad.status_code == 422 and "attention_interpolation" in bad.json()["errors"]
    cleared = api.patch(f"/api/keyframes/{start['id']}", json={"attention_interpolation": None})
    assert cleared.status_code == 200
    assert api.get(f"/api/keyframes/{start['id']}").json()["attention_interpolation"] is None


def test_the_project_file_carries_the_attention_settings(api: TestClient) -> None:
    t = create(api, attention_interpolation="outer", attention_steps=0.6, spacing="beta")
    start = api.get(f"/api/transitions/{t['id']}").json()["keyframes"][0]
    api.patch(f"/api/keyframes/{start['id']}", json={"attention_interpolation": "fused"})
    exported = api.get(f"/api/transitions/{t['id']}/project")
    project = json.loads(exported.content)
    assert project["settings"]["attention_interpolation"] == "outer"
    assert project["settings"]["attention_steps"] == 0.6 and project["settings"]["spacing"] == "beta"
    assert project["keyframes"][0]["attention_interpolation"] == "fused"
    imported = api.post(
        "/api/projects", content=exported.content, headers={"content-type": "application/json"}
    )
    assert imported.status_code == 201, imported.text
    again = api.get(f"/api/transitions/{imported.json()['id']}/project")
    assert again.content == exported.content


def test_attention_renders_new_in_betweens_and_reuses_the_keyframes(api: TestClient, worker) -> None:  # type: ignore[no-untyped-def]
    t = create(api, frames=5, steps=4, batch_size=2)
    plain = render(api, t["id"])
    worker()
    assert api.get(f"/api/renders/{plain['id']}").json()["status"] == "done"
    api.patch(f"/api/transitions/{t['id']}", json={"attention_interpolation": "fused"})
    mixed = render(api, t["id"])
    worker()
    done = api.get(f"/api/renders/{mixed['id']}").json()
    assert done["status"] == "done", done
    assert [f["reused"] for f in done["frames"]] == [True, False, False, False, True]
    before = api.get(f"/api/renders/{plain['id']}").json()["frames"]
    assert all(a["url"] != b["url"] for a, b in zip(before[1:-1], done["frames"][1:-1], strict=True))
    assert "attention fused (first 50% of the steps)" in api.get(f"/transitions/{t['id']}").text
    # A segment set back to none is the plain render again: every frame reused.
    start = api.get(f"/api/transitions/{t['id']}").json()["keyframes"][0]
    api.patch(f"/api/keyframes/{start['id']}", json={"attention_interpolation": "none"})
    again = render(api, t["id"])
    assert again["status"] == "done" and again["stats"]["frames_reused"] == 5


def test_beta_spacing_is_planned_by_a_probe_pass(api: TestClient, worker, queued) -> None:  # type: ignore[no-untyped-def]
    t = create(api, frames=5, spacing="beta", spacing_budget=5, batch_size=4)
    end = api.get(f"/api/transitions/{t['id']}").json()["keyframes"][-1]
    api.patch(f"/api/keyframes/{end['id']}", json={"seed": 43})
    started = render(api, t["id"])
    assert queued["plans"] == [started["id"]]
    worker()
    done = api.get(f"/api/renders/{started['id']}").json()
    assert done["status"] == "done", done
    ts = [f["t"] for f in done["frames"]]
    assert len(ts) == 5 and ts[0] == 0.0 and ts[-1] == 1.0 and ts == sorted(ts)


def test_the_forms_offer_attention_interpolation(api: TestClient) -> None:
    new = api.get("/transitions/new").text
    assert 'name="attention_interpolation"' in new and 'name="attention_steps"' in new
    for value in ("none", "inner", "outer", "fused", "beta"):
        assert f'value="{value}"' in new
    response = api.post(
        "/transitions",
        data={
            "start_prompt": CITY,
            "end_prompt": FOREST,
            "attention_interpolation": "inner",
            "attention_steps": "0.3",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    tid = int(response.headers["location"].rsplit("/", 1)[1])
    saved = api.get(f"/api/transitions/{tid}").json()
    assert (saved["attention_interpolation"], saved["attention_steps"]) == ("inner", 0.3)
    bad = api.post("/transitions", data={"start_prompt": CITY, "end_prompt": FOREST, "attention_steps": "2"})
    assert "attention_steps must be a finite number between 0 and 1" in bad.text
    start = saved["keyframes"][0]
    page = api.get(f"/transitions/{tid}").text
    assert 'aria-label="segment attention interpolation"' in page
    edited = api.post(f"/keyframes/{start['id']}", data={"prompt": CITY, "attention_interpolation": "outer"})
    assert edited.status_code == 200
    assert api.get(f"/api/keyframes/{start['id']}").json()["attention_interpolation"] == "outer"
    assert "attention outer" in edited.text  # the row's badge


def test_the_worker_gives_stored_frames_their_attention_and_keyframes() -> None:
    """A frame row stores no attention: the worker's requests get the mode and the ends from the snapshot."""
    from core.params import RenderSnapshot
    from core.timeline import keys_of, plan_frames, share
    from engine.probe import request_of, requests_for
    from worker.planning import with_attention

    snapshot = RenderSnapshot(
        seed=7,
        steps=4,
        frames=5,
        in_between="shared",
        shared_from_step=2,
        attention_interpolation="inner",
        keyframes=[
            {"position": 0.0, "prompt": CITY, "attention_interpolation": "outer"},
            {"position": 0.5, "prompt": "a garden"},
            {"position": 1.0, "prompt": FOREST, "seed": 9},
        ],
    )
    plans = share(plan_frames(keys_of(snapshot), 5, seed=7, attention=snapshot.attention_interpolation), 2)
    rows = {p.index: p for p in plans}
    requests = with_attention(snapshot, plans, requests_for(plans, rows), rows)
    for plan, request in zip(plans, requests, strict=True):
        assert request.attention == plan.attention
        assert request.ends == (tuple(request_of(e) for e in plan.ends) if plan.ends else None)
    assert [r.attention for r in requests] == ["none", "outer", "none", "inner", "none"]
    shared = requests[1]
    assert shared.start is not None and shared.start.anchor_a.attention == "none"
    # The end keyframe's own seed: the second segment's end frame is drawn from it.
    assert requests[3].ends is not None and requests[3].ends[1].seed_b == 9


def test_segue_render_gives_the_engine_requests_with_attention_and_keyframes() -> None:
    """The headless renderer copies plans into requests; the keyframes' frames must be requests too."""
    from core.params import PixelSettings
    from core.timeline import TimelineKeyframe, plan_frames, share
    from engine.pipeline import FrameRequest, check_inputs
    from worker.headless import request_of

    keys = [
        TimelineKeyframe(0.0, CITY),
        TimelineKeyframe(0.5, "a garden", attention_interpolation="outer"),
        TimelineKeyframe(1.0, FOREST),
    ]
    plans = share(plan_frames(keys, 7, seed=3, attention="fused"), 2)
    requests = [request_of(plan, plans) for plan in plans]
    pixels = PixelSettings(model="segue-tiny", seed=3, steps=4, width=64, height=64)
    check_inputs(pixels, requests)
    mixing = [r for r in requests if r.attention != "none"]
    assert {r.attention for r in mixing} == {"fused", "outer"}
    assert all(
        isinstance(end, FrameRequest) and end.attention == "none" for r in mixing for end in r.ends or ()
    )
    assert requests[1].start is not None  # a shared in-between keeps its anchors
