"""Paths and spacing through the API and the pages: keyframe seeds, holds, cuts, segment settings, noise
paths, spacings and trajectory sharing, planned by the web side and rendered by the worker code in-process
on the tiny model (batches are run as they are queued, no broker)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.inprocess import CITY, FOREST, create, render

# ---------------------------------------------------------------- settings and keyframes in the API


def test_a_transition_takes_and_reports_its_path_settings(api: TestClient) -> None:
    created = create(
        api,
        noise_interpolation="normalized",
        spacing="ease_in_out",
        spacing_budget=5,
        in_between="shared",
        shared_from_step=2,
    )
    for name, value in dict(
        noise_interpolation="normalized",
        spacing="ease_in_out",
        spacing_budget=5,
        in_between="shared",
        shared_from_step=2,
    ).items():
        assert created[name] == value, name
    defaults = create(api)
    assert (defaults["noise_interpolation"], defaults["spacing"], defaults["in_between"]) == (
        "slerp",
        "uniform",
        "full",
    )
    assert defaults["spacing_budget"] is None and defaults["shared_from_step"] is None
    patched = api.patch(
        f"/api/transitions/{defaults['id']}", json={"spacing": "adaptive", "noise_interpolation": "translate"}
    )
    assert patched.status_code == 200 and patched.json()["spacing"] == "adaptive"
    # null clears a budget or a shared step back to "not set" (their defaults)
    cleared = api.patch(
        f"/api/transitions/{created['id']}", json={"spacing_budget": None, "shared_from_step": None}
    )
    assert cleared.status_code == 200
    assert (cleared.json()["spacing_budget"], cleared.json()["shared_from_step"]) == (None, None)


@pytest.mark.parametrize(
    ("override", "field", "needle"),
    [
        (
            {"noise_interpolation": "cubic"},
            "noise_interpolation",
            "'linear', 'normalized', 'slerp' or 'translate'",
        ),
        ({"spacing": "random"}, "spacing", "uniform"),
        ({"in_between": "half"}, "in_between", "'full' or 'shared'"),
        ({"spacing_budget": 1}, "spacing_budget", "spacing_budget must be between 2 and 600"),
        ({"shared_from_step": 0}, "shared_from_step", "shared_from_step must be between 1 and 150"),
    ],
)
def test_bad_path_settings_are_422_naming_the_field(
    api: TestClient, override: dict[str, Any], field: str, needle: str
) -> None:
    response = api.post("/api/transitions", json={"start_prompt": CITY, "end_prompt": FOREST, **override})
    assert response.status_code == 422
    assert needle in response.json()["errors"][field]


def test_keyframes_take_seed_hold_cut_and_segment_settings(api: TestClient) -> None:
    t = create(api)
    response = api.post(
        f"/api/transitions/{t['id']}/keyframes",
        json={
            "position": 0.5,
            "prompt": "a city garden",
            "seed": 7,
            "hold_frames": 2,
            "cut": True,
            "frames": 4,
            "noise_interpolation": "linear",
            "switch_step": 1,
        },
    )
    assert response.status_code == 201, response.text
    kf = response.json()
    assert {
        k: kf[k] for k in ("seed", "hold_frames", "cut", "frames", "noise_interpolation", "switch_step")
    } == {
        "seed": 7,
        "hold_frames": 2,
        "cut": True,
        "frames": 4,
        "noise_interpolation": "linear",
        "switch_step": 1,
    }
    # PATCH changes what it names; null puts a setting back to "not set".
    patched = api.patch(
        f"/api/keyframes/{kf['id']}", json={"seed": None, "cut": False, "hold_frames": 1}
    ).json()
    assert (patched["seed"], patched["cut"], patched["hold_frames"], patched["frames"]) == (None, False, 1, 4)
    listed = api.get(f"/api/transitions/{t['id']}").json()["keyframes"]
    assert listed[1]["frames"] == 4 and listed[0]["seed"] is None and listed[0]["hold_frames"] == 0
    # The start keyframe takes a seed; the end keyframe starts no segment.
    start, end = listed[0], listed[-1]
    assert api.patch(f"/api/keyframes/{start['id']}", json={"seed": 3, "cut": True}).status_code == 200
    refused = api.patch(f"/api/keyframes/{end['id']}", json={"cut": True})
    assert refused.status_code == 422 and "end keyframe starts none" in refused.json()["errors"]["cut"]
    assert api.patch(f"/api/keyframes/{end['id']}", json={"seed": 9, "hold_frames": 3}).status_code == 200
    bad = api.patch(f"/api/keyframes/{kf['id']}", json={"hold_frames": -1})
    assert (
        bad.status_code == 422
        and "hold_frames must be between 0 and 600" in bad.json()["errors"]["hold_frames"]
    )


# ---------------------------------------------------------------- planning through the API


def test_the_render_plans_holds_cuts_seeds_and_segment_frames(
    api: TestClient, queued: dict[str, list[Any]]
) -> None:
    t = create(api, frames=9, seed=5, noise_interpolation="normalized")
    start, end = api.get(f"/api/transitions/{t['id']}").json()["keyframes"]
    api.patch(f"/api/keyframes/{end['id']}", json={"seed": 6})
    api.post(
        f"/api/transitions/{t['id']}/keyframes",
        json={"position": 0.5, "prompt": "a garden", "hold_frames": 2, "cut": True},
    )
    frames = render(api, t["id"])["frames"]
    assert len(frames) == 11
    ts = [f["t"] for f in frames]
    assert ts == sorted(ts) and ts.count(0.5) == 3 and ts[0] == 0.0 and ts[-1] == 1.0
    first_half = [f for f in frames if f["t"] < 0.5]
    assert all(f["seed_a"] == 5 and f["seed_b"] == 6 and f["noise_path"] == "normalized" for f in frames)
    assert [f["noise_t"] for f in first_half] == pytest.approx([f["t"] for f in first_half])
    cut = [f for f in frames if f["t"] > 0.5 and f["t"] < 1.0]
    assert all(f["prompt_a"] == "a garden" and f["local_t"] == 0.0 and f["noise_t"] == 0.5 for f in cut)
    # Frames with one key (the held ones, the cut segment) are queued once, in one batch.
    queued_indices = [i for _, batch in queued["batches"] for i in batch]
    assert sorted(queued_indices) == list(range(11))
    held = {f["index"] for f in frames if f["t"] == 0.5 or f in cut}
    assert any(held <= set(batch) for _, batch in queued["batches"])


@pytest.mark.parametrize("spacing", ["uniform", "ease_in_out", "ease_in", "ease_out", "sine"])
def test_each_named_spacing_places_the_frames(api: TestClient, spacing: str) -> None:
    from core.spacing import spaced

    t = create(api, frames=7, spacing=spacing)
    frames = render(api, t["id"])["frames"]
    assert [f["t"] for f in frames] == pytest.approx(spaced(7, spacing))


def test_a_timeline_with_too_many_frames_is_refused_before_anything_is_saved(api: TestClient) -> None:
    t = create(api, frames=590)  # the grid misses 0.5: the held keyframe gets its own frame, then 20 more
    api.post(
        f"/api/transitions/{t['id']}/keyframes",
        json={"position": 0.5, "prompt": "a garden", "hold_frames": 20},
    )
    response = api.post(f"/api/transitions/{t['id']}/renders")
    assert response.status_code == 422 and "plans 611 frames" in response.json()["errors"]["frames"]
    assert api.get(f"/api/transitions/{t['id']}").json()["latest_render"] is None


# ---------------------------------------------------------------- rendered end to end (in-process worker)


@pytest.mark.parametrize("path", ["linear", "normalized", "slerp", "translate"])
def test_each_noise_path_renders_through_the_api(api: TestClient, worker, path: str) -> None:  # type: ignore[no-untyped-def]
    t = create(api, frames=4, noise_interpolation=path)
    end = api.get(f"/api/transitions/{t['id']}").json()["keyframes"][-1]
    api.patch(f"/api/keyframes/{end['id']}", json={"seed": 43})
    started = render(api, t["id"])
    worker()
    done = api.get(f"/api/renders/{started['id']}").json()
    assert done["status"] == "done", done
    assert all(f["url"] and f["noise_path"] == path for f in done["frames"])
    assert len({f["url"] for f in done["frames"]}) == 4


@pytest.mark.parametrize("spacing", ["perceptual", "adaptive"])
def test_probed_spacings_are_planned_by_a_worker(api: TestClient, worker, queued, spacing: str) -> None:  # type: ignore[no-untyped-def]
    t = create(api, frames=5, spacing=spacing, spacing_budget=3, batch_size=4)
    end = api.get(f"/api/transitions/{t['id']}").json()["keyframes"][-1]
    api.patch(f"/api/keyframes/{end['id']}", json={"seed": 43})
    started = render(api, t["id"])
    assert started["frames"] == [] and started["status"] == "queued"
    assert queued["plans"] == [started["id"]] and queued["batches"] == []
    page = api.get(f"/transitions/{t['id']}").text
    assert "Placing the frames with a probe pass" in page and 'hx-trigger="every 1s"' in page
    worker()
    done = api.get(f"/api/renders/{started['id']}").json()
    assert done["status"] == "done", done
    ts = [f["t"] for f in done["frames"]]
    assert ts[0] == 0.0 and ts[-1] == 1.0 and ts == sorted(ts) and len(set(ts)) == len(ts)
    if spacing == "perceptual":
        assert len(ts) == 5 and ts != pytest.approx([0, 0.25, 0.5, 0.75, 1])
    else:
        assert 5 <= len(ts) <= 8
    assert done["stats"]["frames_total"] == len(ts)
    # The editor now shows a tick at each frame's t and the spacing curve.
    page = api.get(f"/transitions/{t['id']}").text
    ticks = [float(x) for x in re.findall(r'class="tick[^"]*" data-css-left="[^"]*" data-t="([^"]+)"', page)]
    assert ticks == pytest.approx(ts)
    assert 'class="spacing-curve"' in page


def test_shared_in_betweens_render_and_the_unchanged_frames_are_reused(api: TestClient, worker) -> None:  # type: ignore[no-untyped-def]
    t = create(api, frames=5, steps=4, in_between="shared", shared_from_step=2, batch_size=2)
    api.post(
        f"/api/transitions/{t['id']}/keyframes",
        json={"position": 0.5, "prompt": "a garden", "switch_step": 1},
    )
    first = render(api, t["id"])
    assert [f["start_step"] for f in first["frames"]] == [0, 2, 0, 2, 0]
    worker()
    done = api.get(f"/api/renders/{first['id']}").json()
    assert done["status"] == "done" and all(f["url"] for f in done["frames"])
    again = render(api, t["id"])
    assert again["status"] == "done" and again["stats"]["frames_reused"] == 5
    # Full frames instead: the anchors are the same frames, the in-betweens are new.
    api.patch(f"/api/transitions/{t['id']}", json={"in_between": "full"})
    full = render(api, t["id"])
    assert [f["reused"] for f in full["frames"]] == [True, False, True, False, True]


# ---------------------------------------------------------------- the pages


def test_the_forms_offer_paths_and_spacing_and_save_keyframe_settings(api: TestClient) -> None:
    new = api.get("/transitions/new").text
    for name in ("noise_interpolation", "spacing", "in_between"):
        assert f'name="{name}"' in new
    for value in (
        "linear",
        "normalized",
        "slerp",
        "translate",
        "perceptual",
        "adaptive",
        "ease_in_out",
        "shared",
    ):
        assert f'value="{value}"' in new
    response = api.post(
        "/transitions",
        data={
            "start_prompt": CITY,
            "end_prompt": FOREST,
            "spacing": "sine",
            "noise_interpolation": "translate",
            "in_between": "shared",
            "shared_from_step": "3",
            "spacing_budget": "",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    tid = int(response.headers["location"].rsplit("/", 1)[1])
    saved = api.get(f"/api/transitions/{tid}").json()
    assert (
        saved["spacing"],
        saved["noise_interpolation"],
        saved["in_between"],
        saved["shared_from_step"],
    ) == (
        "sine",
        "translate",
        "shared",
        3,
    )
    settings = {
        "title": "t",
        "start_prompt": CITY,
        "end_prompt": FOREST,
        "shared_from_step": "",
        "spacing_budget": "4",
    }
    assert (
        api.post(f"/transitions/{tid}/settings", data=settings, headers={"HX-Request": "true"}).status_code
        == 200
    )
    saved = api.get(f"/api/transitions/{tid}").json()
    assert (saved["shared_from_step"], saved["spacing_budget"]) == (None, 4)
    editor = api.get(f"/transitions/{tid}").text
    assert 'name="hold_frames"' in editor and 'name="switch_step"' in editor and 'name="cut"' in editor

    # The insert form takes the keyframe settings; the row form changes and clears them.
    added = api.post(
        f"/transitions/{tid}/keyframes",
        data={
            "position": "0.4",
            "prompt": "a garden",
            "seed": "11",
            "hold_frames": "2",
            "cut": "true",
            "noise_interpolation": "",
            "switch_step": "",
        },
        headers={"HX-Request": "true"},
    )
    assert added.status_code == 200, added.text
    kf = api.get(f"/api/transitions/{tid}").json()["keyframes"][1]
    assert (kf["seed"], kf["hold_frames"], kf["cut"], kf["noise_interpolation"]) == (11, 2, True, None)
    edited = api.post(
        f"/keyframes/{kf['id']}",
        data={
            "position": "0.4",
            "prompt": "a garden",
            "seed": "",
            "hold_frames": "0",
            "cut": "false",
            "frames": "5",
        },
        headers={"HX-Request": "true"},
    )
    assert edited.status_code == 200, edited.text
    kf = api.get(f"/api/transitions/{tid}").json()["keyframes"][1]
    assert (kf["seed"], kf["hold_frames"], kf["cut"], kf["frames"]) == (None, 0, False, 5)
    bad = api.post(f"/keyframes/{kf['id']}", data={"switch_step": "-3"}, headers={"HX-Request": "true"})
    assert bad.status_code == 422 and "switch_step must be between 0 and 150" in bad.text
