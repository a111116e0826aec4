"""MoCE through the API: keyframes take `concepts`, an "auto" switch step gets a search (one per set of
inputs, found again after undo), a render waits for it (queued, the page names the search) and then uses
its N, a failed search fails a waiting render visibly, and
GET /api/keyframes/{id} shows the chosen step and the trace. The last test runs a real worker process that
searches with a CLIP (Segue-mini's mini CLIP, pointed at by SEGUE_SCORER_CLIP: the tiny model has none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
CITY, BOAT_DESERT, FOREST = "a city at night", "a boat in the desert", "a forest"
CONCEPTS = {"first": "a boat", "second": "a desert", "second_description": "sand dunes under the sky"}


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Record what the web side queues: render batches and switch step searches."""
    queued: dict[str, list[Any]] = {"batches": [], "searches": [], "plans": []}
    monkeypatch.setattr(
        "services.rendering.send_render_batch",
        lambda rid, indices, **_: queued["batches"].append((rid, indices)),
    )
    monkeypatch.setattr("services.rendering.send_plan_render", lambda rid: queued["plans"].append(rid))
    monkeypatch.setattr("services.moce.send_moce_search", lambda sid: queued["searches"].append(sid))
    return queued


@pytest.fixture
def api(database: str, sent: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from app.main import create_app
    from tests.support.isolation import without_reaper

    without_reaper(monkeypatch)
    with TestClient(create_app(), headers={"Origin": "http://testserver"}) as test_client:
        yield test_client


def create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    body = {"start_prompt": CITY, "end_prompt": FOREST, "frames": 5, "seed": 4, "steps": 6, **overrides}
    response = client.post("/api/transitions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def add(client: TestClient, tid: int, **body: Any) -> dict[str, Any]:
    response = client.post(
        f"/api/transitions/{tid}/keyframes", json={"position": 0.5, "prompt": BOAT_DESERT, **body}
    )
    assert response.status_code == 201, response.text
    return response.json()


def finish_search(search_id: int, chosen: int) -> None:
    """Play the worker: mark a search done with a chosen step and a one-probe trace."""
    from infra.db import new_session
    from infra.tables import ConceptSearch

    with new_session() as db:
        db.execute(
            update(ConceptSearch)
            .where(ConceptSearch.id == search_id)
            .values(status="done", chosen_step=chosen, trace=[{"step": chosen, "disparity": 0.4}], details={})
        )
        db.commit()


def test_a_keyframe_takes_concepts_and_refuses_bad_ones_naming_the_field(
    api: TestClient, sent: dict[str, list[Any]]
) -> None:
    tid = create(api)["id"]
    keyframe = add(api, tid, concepts=CONCEPTS)
    assert keyframe["concepts"] == {
        "first": "a boat",
        "first_description": None,
        "second": "a desert",
        "second_description": "sand dunes under the sky",
        "switch_step": "auto",
    }
    assert len(sent["searches"]) == 1  # "auto": the search was queued with the edit
    assert api.get(f"/api/transitions/{tid}").json()["keyframes"][1]["concepts"]["first"] == "a boat"
    for concepts, field, needle in [
        ({"first": "", "second": "a desert"}, "concepts.first", "must not be empty"),
        ({"first": "a boat"}, "concepts.second", "required"),
        ({**CONCEPTS, "switch_step": 500}, "concepts.switch_step", "between 0 and 150"),
        ({**CONCEPTS, "switch_step": "later"}, "concepts.switch_step", '"auto"'),
        ({**CONCEPTS, "order": 1}, "concepts.order", "not a known field"),
    ]:
        response = api.patch(f"/api/keyframes/{keyframe['id']}", json={"concepts": concepts})
        assert response.status_code == 422, response.text
        assert needle in response.json()["errors"][field], response.json()
    # A number needs no search; null switches MoCE off.
    numbered = api.patch(
        f"/api/keyframes/{keyframe['id']}", json={"concepts": {**CONCEPTS, "switch_step": 7}}
    )
    assert numbered.status_code == 200 and numbered.json()["concepts"]["switch_step"] == 7
    assert api.get(f"/api/keyframes/{keyframe['id']}").json()["moce"] is None
    off = api.patch(f"/api/keyframes/{keyframe['id']}", json={"concepts": None})
    assert off.status_code == 200 and off.json()["concepts"] is None
    assert len(sent["searches"]) == 1


def test_a_render_waits_for_the_search_then_uses_its_step_and_undo_finds_the_search_again(
    api: TestClient, sent: dict[str, list[Any]]
) -> None:
    from infra.db import new_session
    from infra.tables import ConceptSearch

    tid = create(api)["id"]
    kid = add(api, tid, concepts=CONCEPTS)["id"]
    (search_id,) = sent["searches"]
    shown = api.get(f"/api/keyframes/{kid}").json()
    assert shown["moce"] == {"status": "queued", "chosen_step": None, "trace": [], "error": None}

    waiting = api.post(f"/api/transitions/{tid}/renders")
    assert waiting.status_code == 202, waiting.text  # accepted: it waits for the search
    render_id = waiting.json()["id"]
    shown_render = api.get(f"/api/renders/{render_id}").json()
    assert shown_render["status"] == "queued" and shown_render["frames"] == []
    page = api.get(f"/transitions/{tid}").text
    assert "waiting for the switch step search for the keyframe at 0.5" in page
    assert sent["searches"] == [search_id] and not sent["batches"]  # it exists: not queued twice
    assert not sent["plans"]  # nothing plans before the search ends

    finish_search(search_id, 4)
    shown = api.get(f"/api/keyframes/{kid}").json()
    assert shown["moce"]["status"] == "done" and shown["moce"]["chosen_step"] == 4
    assert shown["moce"]["trace"] == [{"step": 4, "disparity": 0.4, "thumbnail_url": None}]
    wake_and_plan(tid, sent)
    planned = api.get(f"/api/renders/{render_id}").json()
    assert planned["status"] in ("queued", "running") and sent["batches"]
    frames = planned["frames"]
    # t = 0, .25, .5, .75, 1: both segments touch the keyframe, N = the chosen step
    assert [(f["early_a"], f["early_b"], f["switch_step"]) for f in frames] == [
        (CITY, "a boat", 4),
        (CITY, "a boat", 4),
        ("a boat", FOREST, 4),
        ("a boat", FOREST, 4),
        ("a boat", FOREST, 4),
    ]

    # Identical inputs are searched once: a second keyframe with the same prompt and concepts shares it.
    twin = add(api, tid, position=0.8, concepts=CONCEPTS)
    assert sent["searches"] == [search_id]
    assert api.get(f"/api/keyframes/{twin['id']}").json()["moce"]["chosen_step"] == 4
    # New settings are new inputs: a new search, queued with the edit.
    assert api.patch(f"/api/transitions/{tid}", json={"steps": 8}).status_code == 200
    assert len(sent["searches"]) == 2
    assert api.get(f"/api/keyframes/{kid}").json()["moce"]["status"] == "queued"
    # Undo: the old settings find their search again (done, N = 4); nothing new is queued.
    assert api.post(f"/api/transitions/{tid}/undo").status_code == 200
    assert api.get(f"/api/keyframes/{kid}").json()["moce"]["chosen_step"] == 4
    # Switching MoCE off and undoing it brings the keyframe's concepts back, and with them the search.
    assert api.patch(f"/api/keyframes/{kid}", json={"concepts": None}).status_code == 200
    assert api.get(f"/api/keyframes/{kid}").json()["moce"] is None
    assert api.post(f"/api/transitions/{tid}/undo").status_code == 200
    back = api.get(f"/api/keyframes/{kid}").json()
    assert back["concepts"]["first"] == "a boat" and back["moce"]["chosen_step"] == 4
    assert len(sent["searches"]) == 2
    with new_session() as db:
        assert len(db.scalars(select(ConceptSearch)).all()) == 2


def wake_and_plan(tid: int, sent: dict[str, list[Any]]) -> None:
    """Play the worker: a search ended (worker/moce.py wakes the renders waiting for it), plan them."""
    from infra.db import new_session
    from services.rendering import plan_waiting
    from worker.planning import run_plan

    with new_session() as db:
        assert plan_waiting(db, tid) == 1
    while sent["plans"]:
        run_plan(sent["plans"].pop(0))


def test_a_render_waiting_for_a_search_that_fails_fails_with_its_reason(
    api: TestClient, sent: dict[str, list[Any]]
) -> None:
    from infra.db import new_session
    from infra.tables import ConceptSearch

    tid = create(api)["id"]
    add(api, tid, concepts=CONCEPTS)
    waiting = api.post(f"/api/transitions/{tid}/renders")
    assert waiting.status_code == 202
    with new_session() as db:
        db.execute(update(ConceptSearch).values(status="failed", error="model 'x' has no CLIP"))
        db.commit()
    wake_and_plan(tid, sent)
    failed = api.get(f"/api/renders/{waiting.json()['id']}").json()
    assert failed["status"] == "failed" and not sent["batches"]
    assert "the switch step search for the keyframe at 0.5 failed: model 'x' has no CLIP" in failed["error"]


def test_a_failed_search_is_named_by_the_render_and_searched_again_when_the_keyframe_is_saved(
    api: TestClient, sent: dict[str, list[Any]]
) -> None:
    from infra.db import new_session
    from infra.tables import ConceptSearch

    tid = create(api)["id"]
    kid = add(api, tid, concepts=CONCEPTS)["id"]
    with new_session() as db:
        db.execute(update(ConceptSearch).values(status="failed", error="model 'x' has no CLIP"))
        db.commit()
    refused = api.post(f"/api/transitions/{tid}/renders")
    assert refused.status_code == 422
    assert "the switch step search for the keyframe at 0.5 failed: model 'x' has no CLIP" in refused.text
    assert api.patch(f"/api/keyframes/{kid}", json={"concepts": CONCEPTS}).status_code == 200
    assert api.get(f"/api/keyframes/{kid}").json()["moce"]["status"] == "queued"
    assert len(sent["searches"]) == 2 and sent["searches"][0] == sent["searches"][1]


def test_the_keyframe_row_form_turns_sequential_concepts_on_and_shows_errors(
    api: TestClient, sent: dict[str, list[Any]]
) -> None:
    transition = create(api)
    kid = add(api, transition["id"])["id"]
    page = api.get(f"/transitions/{transition['id']}")
    assert "Sequential concepts (MoCE)" in page.text and 'name="concepts.first"' in page.text
    form = {
        "prompt": BOAT_DESERT,
        "version": str(transition["version"] + 1),
        "concepts.on": ["false", "true"],
        "concepts.first": "a boat",
        "concepts.second": "a desert",
        "concepts.switch_step": "",
    }
    saved = api.post(f"/keyframes/{kid}", data=form, headers={"HX-Request": "true"})
    assert saved.status_code == 200, saved.text
    assert api.get(f"/api/keyframes/{kid}").json()["concepts"]["switch_step"] == "auto"
    assert len(sent["searches"]) == 1
    assert "Switch step search: waiting for a worker" in saved.text
    status = api.get(f"/keyframes/{kid}/concepts")
    assert 'hx-trigger="every 1s"' in status.text and 'data-status="queued"' in status.text
    finish_search(sent["searches"][0], 3)
    status = api.get(f"/keyframes/{kid}/concepts")
    assert "switch step N = <strong>3</strong>" in status.text and "every 1s" not in status.text
    version = api.get(f"/api/transitions/{transition['id']}").json()["version"]
    bad = api.post(
        f"/keyframes/{kid}",
        data={**form, "version": str(version), "concepts.second": " ", "concepts.switch_step": "999"},
        headers={"HX-Request": "true"},
    )
    assert bad.status_code == 422
    assert "concepts.second must not be empty" in bad.text
    off = api.post(
        f"/keyframes/{kid}",
        data={"prompt": BOAT_DESERT, "version": str(version), "concepts.on": "false"},
        headers={"HX-Request": "true"},
    )
    assert off.status_code == 200 and api.get(f"/api/keyframes/{kid}").json()["concepts"] is None


def test_without_a_clip_the_search_fails_asking_for_a_number_or_a_clip(
    api: TestClient,
    sent: dict[str, list[Any]],
    models_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import torch

    from tests.support.isolation import reset_caches
    from worker.moce import run_search

    torch.set_num_threads(1)
    monkeypatch.setenv("SEGUE_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("SEGUE_WORKER_DEVICE", "cpu")
    monkeypatch.setenv("SEGUE_SCORER_CLIP", str(tmp_path / "no-clip-here"))
    reset_caches()
    tid = create(api, steps=3)["id"]
    kid = add(api, tid, concepts=CONCEPTS)["id"]
    run_search(sent["searches"][0])
    moce = api.get(f"/api/keyframes/{kid}").json()["moce"]
    assert moce["status"] == "failed" and moce["chosen_step"] is None
    assert "has no CLIP to measure the concepts with" in moce["error"]
    assert "switch step number instead of \u201cauto\u201d, or set SEGUE_SCORER_CLIP" in moce["error"]


def _done(stack: Any, kid: int) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        body = stack.client.get(f"/api/keyframes/{kid}").json()
        return body if body["moce"] and body["moce"]["status"] in ("done", "failed") else None

    try:
        return wait_for(finished, timeout=300, what=f"the switch step search of keyframe {kid}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nworker log:\n{stack.log.read_text()[-4000:]}") from None


def test_an_auto_keyframe_is_searched_by_a_real_worker_and_its_frames_render(
    stack_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.moce import max_probes

    monkeypatch.setenv("SEGUE_SCORER_CLIP", str(REPO / "models" / "segue-mini" / "clip"))
    stack = stack_factory(mode="embedded", database="sqlite")
    client = stack.client
    steps = 8
    tid = create(client, steps=steps)["id"]
    kid = add(client, tid, concepts=CONCEPTS)["id"]

    body = _done(stack, kid)
    moce = body["moce"]
    assert moce["status"] == "done", (moce, stack.log.read_text()[-3000:])
    assert 0 <= moce["chosen_step"] <= steps
    trace = moce["trace"]
    assert 1 <= len(trace) <= max_probes(steps)
    assert moce["chosen_step"] in [p["step"] for p in trace]
    assert trace[0]["step"] == steps // 2  # a binary search starts in the middle
    for probe in trace:
        image = client.get(probe["thumbnail_url"])
        assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
    # The chosen probe has the smallest |D| of the trace.
    best = min(trace, key=lambda p: (abs(p["disparity"]), p["step"]))
    assert best["step"] == moce["chosen_step"]

    started = client.post(f"/api/transitions/{tid}/renders")
    assert started.status_code == 202, started.text
    rid = started.json()["id"]

    def rendered() -> dict[str, Any] | None:
        render = client.get(f"/api/renders/{rid}").json()
        return render if render["status"] in ("done", "failed") else None

    render = wait_for(rendered, timeout=300, what=f"render {rid}")
    assert render["status"] == "done", (render, stack.log.read_text()[-3000:])
    on_keyframe = next(f for f in render["frames"] if f["t"] == 0.5)
    assert (on_keyframe["early_a"], on_keyframe["switch_step"]) == ("a boat", moce["chosen_step"])
    assert all(client.get(f["url"]).status_code == 200 for f in render["frames"])
