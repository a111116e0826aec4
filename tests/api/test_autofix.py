"""The loop through the API and the worker code in-process on the tiny model: problems in /scores and on
the page, a Fix's proposals and applying one, and the autopilot's rounds, stop rules, revert and cancel.

The planted jump: the start keyframe's segment is a cut of 4 frames (all show the start prompt) and the
inner keyframe pins another seed, so the picture changes all at once where the cut ends."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

CITY = "a futuristic cityscape"
FOREST = "a girl in a magical forest"

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Record what the web side and the worker code queue: batches, plans and autofix steps."""
    sent: dict[str, list[Any]] = {"batches": [], "plans": [], "autofix": []}
    monkeypatch.setattr(
        "services.rendering.send_render_batch",
        lambda render_id, indices, **_options: sent["batches"].append((render_id, indices)),
    )
    monkeypatch.setattr("services.rendering.broker_error", lambda: None)
    monkeypatch.setattr("services.rendering.send_plan_render", lambda i: sent["plans"].append(i))
    for where in ("services.rendering", "services.autofix", "worker.autofix"):
        monkeypatch.setattr(f"{where}.send_autofix", lambda i: sent["autofix"].append(i))
    return sent


@pytest.fixture
def api(database: str, queued: dict[str, list[Any]], models_dir, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from app.main import create_app
    from tests.support.isolation import reset_caches, without_reaper

    monkeypatch.setenv("SEGUE_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("SEGUE_WORKER_DEVICE", "cpu")
    without_reaper(monkeypatch)  # no reaper round in the middle of a test
    monkeypatch.setenv("SEGUE_SCORER", "ssim")  # plain pixels: the planted jump is a jump in pixels
    monkeypatch.setenv("SEGUE_SUGGESTER", "template")  # bridges without loading SmolLM2 (tested elsewhere)
    reset_caches()
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture
def worker(api: TestClient, queued: dict[str, list[Any]]):  # type: ignore[no-untyped-def]
    """Run what was queued in this process until nothing is left; `steps` autofix steps at most."""
    import torch

    torch.set_num_threads(1)

    def run(steps: int = 100) -> None:
        from worker.autofix import run_autofix
        from worker.planning import run_plan
        from worker.render import run_batch

        while queued["plans"] or queued["batches"] or (queued["autofix"] and steps > 0):
            if queued["plans"]:
                run_plan(queued["plans"].pop(0))
            elif queued["batches"]:
                run_batch(*queued["batches"].pop(0))
            else:
                steps -= 1
                run_autofix(queued["autofix"].pop(0))

    return run


def jumpy(client: TestClient, frames: int = 9) -> dict[str, Any]:
    body = {"start_prompt": CITY, "end_prompt": FOREST, "frames": frames, "seed": 42, "steps": 3}
    transition = client.post("/api/transitions", json=body).json()
    start = transition["keyframes"][0]["id"]
    assert client.patch(f"/api/keyframes/{start}", json={"cut": True, "frames": 4}).status_code == 200
    added = client.post(
        f"/api/transitions/{transition['id']}/keyframes",
        json={"position": 0.5, "prompt": "a city garden at dusk", "seed": 7},
    )
    assert added.status_code == 201, added.text
    return client.get(f"/api/transitions/{transition['id']}").json()


def render(client: TestClient, worker: Any, transition_id: int) -> dict[str, Any]:
    response = client.post(f"/api/transitions/{transition_id}/renders")
    assert response.status_code == 202, response.text
    worker(steps=0)
    return client.get(f"/api/renders/{response.json()['id']}").json()


def test_the_planted_jump_is_the_worst_problem_in_the_api_and_on_the_page(
    api: TestClient, worker: Any
) -> None:
    transition = jumpy(api)
    done = render(api, worker, transition["id"])
    assert done["status"] == "done"
    scores = api.get(f"/api/renders/{done['id']}/scores").json()
    problems = scores["problems"]
    assert problems, scores
    worst = problems[0]
    assert set(worst) == {"id", "kind", "frames", "t", "severity", "message", "segment"}
    assert worst["kind"] == "jump" and worst["id"] == "jump-3-4"  # the cut holds #0-#3, #4 sits at 0.5
    frames = {f["index"]: f["t"] for f in scores["frames"]}
    assert worst["t"] == pytest.approx((frames[3] + frames[4]) / 2, abs=1e-4)
    assert [p["severity"] for p in problems] == sorted((p["severity"] for p in problems), reverse=True)

    page = api.get(f"/transitions/{transition['id']}").text
    listed = [chunk.split('"')[0] for chunk in page.split('data-problem="')[1:]]
    assert listed == [p["id"] for p in problems]  # the page lists the API's problems, in its order
    assert f'name="position" value="{worst["t"]:.6f}"' in page  # its insert box sits between the frames

    # The frame panel of #3 inserts between #3 and #4 (the midpoint), not at #3's own t
    panel = api.get(f"/frames/{done['id']}/3", headers={"HX-Request": "true"}).text
    assert f'name="position" value="{round(worst["t"], 6)}"' in panel
    assert "between #3 and #4" in panel


def test_a_fix_proposes_probed_bridges_and_applying_one_renders_only_its_segment(
    api: TestClient, worker: Any
) -> None:
    transition = jumpy(api)
    done = render(api, worker, transition["id"])
    worst = api.get(f"/api/renders/{done['id']}/scores").json()["problems"][0]

    asked = api.post(f"/api/renders/{done['id']}/problems/fixes", json={"problem": worst["id"]})
    assert asked.status_code == 202, asked.text
    worker()
    fix = api.get(f"/api/autofix/{asked.json()['id']}").json()
    assert fix["status"] == "done" and fix["kind"] == "fix", fix
    assert 1 <= len(fix["proposals"]) <= 3
    assert [p["predicted"] for p in fix["proposals"]] == sorted(p["predicted"] for p in fix["proposals"])
    bridge = next(p for p in fix["proposals"] if p["kind"] == "bridge")
    assert bridge["position"] == pytest.approx(worst["t"], abs=1e-4) and bridge["prompt"]
    assert bridge["thumbnail_url"] and api.get(bridge["thumbnail_url"]).status_code == 200
    assert fix["frames_spent"] >= len(fix["proposals"])

    before = api.get(f"/api/transitions/{transition['id']}").json()
    applied = api.post(f"/api/autofix/{fix['id']}/apply", json={"proposal": bridge["id"]})
    assert applied.status_code == 201, applied.text
    after = api.get(f"/api/transitions/{transition['id']}").json()
    assert after["version"] == before["version"] + 1
    assert len(after["keyframes"]) == len(before["keyframes"]) + 1
    new = next(k for k in after["keyframes"] if k["prompt"] == bridge["prompt"])
    assert new["position"] == pytest.approx(worst["t"], abs=1e-6)
    edits = api.get(f"/api/transitions/{transition['id']}/edits").json()
    assert "the jump between #3 and #4" in str(edits)

    worker()
    second = api.get(f"/api/renders/{applied.json()['render_id']}").json()
    assert second["status"] == "done"
    # The bridge changes one frame (the new keyframe's, at its t): the probe rendered it, so the render
    # reuses it with every other frame and computes nothing
    assert bridge["probed"] and len(bridge["probed"]) == 1
    assert second["stats"]["frames_computed"] == 0
    assert second["stats"]["frames_reused"] == second["stats"]["frames_total"] == 10
    keys = {f["url"] for f in second["frames"]}
    assert len(keys) == len({f["url"] for f in api.get(f"/api/renders/{done['id']}").json()["frames"]}) + 1

    # One undo takes the fix back
    undone = api.post(f"/api/transitions/{transition['id']}/undo")
    assert undone.status_code == 200, undone.text
    restored = api.get(f"/api/transitions/{transition['id']}").json()
    assert [k["prompt"] for k in restored["keyframes"]] == [k["prompt"] for k in before["keyframes"]]


def test_a_fix_names_a_problem_the_render_has(api: TestClient, worker: Any) -> None:
    transition = jumpy(api)
    done = render(api, worker, transition["id"])
    wrong = api.post(f"/api/renders/{done['id']}/problems/fixes", json={"problem": "jump-0-99"})
    assert wrong.status_code == 422 and "jump-0-99" in wrong.json()["errors"]["problem"]
    extra = api.post(f"/api/renders/{done['id']}/problems/fixes", json={"problem": "x", "more": 1})
    assert extra.status_code == 422 and "more" in extra.json()["errors"]


def test_the_autopilot_fixes_the_planted_jump_and_stops_by_its_rules(api: TestClient, worker: Any) -> None:
    transition = jumpy(api)
    first = render(api, worker, transition["id"])
    worst_before = api.get(f"/api/renders/{first['id']}/scores").json()["problems"][0]["severity"]

    started = api.post(f"/api/transitions/{transition['id']}/autofix", json={"max_rounds": 2})
    assert started.status_code == 202 and set(started.json()) == {"id", "status"}
    worker()
    run = api.get(f"/api/autofix/{started.json()['id']}").json()
    assert run["status"] == "done", run
    assert set(run) >= {"id", "status", "rounds", "stopped_because"}
    assert 1 <= len(run["rounds"]) <= 2
    assert run["stopped_because"]
    first_round = run["rounds"][0]
    assert set(first_round) >= {"problem", "fix", "edit_version", "before", "after"}
    assert first_round["problem"]["id"] == "jump-3-4"
    assert first_round["before"]["worst"] == pytest.approx(worst_before, abs=1e-3)
    kept = [r for r in run["rounds"] if r["outcome"] == "kept"]
    assert kept, run  # the bridge lowers the planted jump
    assert all(r["after"]["worst"] < r["before"]["worst"] for r in kept)
    if len(run["rounds"]) == 2 and run["rounds"][1]["outcome"] == "kept":
        assert "max_rounds" in run["stopped_because"]
    # every round is one edit, each naming the problem it answered
    history = str(api.get(f"/api/transitions/{transition['id']}/edits").json())
    assert f"autopilot #{started.json()['id']} round 1: fixes the jump between #3 and #4" in history


def test_the_autopilot_stops_at_its_target_and_its_budget(api: TestClient, worker: Any) -> None:
    transition = jumpy(api)
    first = render(api, worker, transition["id"])
    smooth = api.get(f"/api/renders/{first['id']}/scores").json()["summary"]["smoothness"]
    met = api.post(f"/api/transitions/{transition['id']}/autofix", json={"target_smoothness": smooth / 2})
    worker()
    run = api.get(f"/api/autofix/{met.json()['id']}").json()
    assert run["rounds"] == [] and "reached the target" in run["stopped_because"]

    tight = api.post(f"/api/transitions/{transition['id']}/autofix", json={"budget_frames": 1})
    worker()
    run = api.get(f"/api/autofix/{tight.json()['id']}").json()
    assert run["status"] == "done" and run["frames_spent"] <= 1 + 0  # no fix fits in one frame
    assert run["rounds"] == []


def test_a_round_that_makes_things_worse_is_undone(
    api: TestClient, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.autofix as pilot

    transition = jumpy(api)
    render(api, worker, transition["id"])
    before = api.get(f"/api/transitions/{transition['id']}").json()

    def harmful(db, run, transition, render, problem, budget):  # type: ignore[no-untyped-def]
        # A probe that promised much, for a keyframe far from the jump: the jump stays as it was
        return [
            {
                "id": "bridge-0",
                "kind": "bridge",
                "label": "a harmful bridge",
                "prompt": "a stormy sea",
                "position": 0.75,
                "predicted": 0.0,
                "current": 1.0,
                "cost": 1,
            }
        ], 1

    monkeypatch.setattr(pilot, "propose", harmful)
    started = api.post(f"/api/transitions/{transition['id']}/autofix", json={"max_rounds": 3})
    worker()
    run = api.get(f"/api/autofix/{started.json()['id']}").json()
    assert [r["outcome"] for r in run["rounds"]] == ["reverted"], run
    assert "did not improve" in run["stopped_because"] and "undone" in run["stopped_because"]
    after = api.get(f"/api/transitions/{transition['id']}").json()
    assert [k["prompt"] for k in after["keyframes"]] == [k["prompt"] for k in before["keyframes"]]
    assert after["version"] == before["version"] + 2  # the round's edit and its undo, both in the history


def test_one_autopilot_at_a_time_and_cancel_mid_round(
    api: TestClient, worker: Any, queued: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.autofix as pilot

    real = pilot.propose

    def unprobed(*args: Any, **kwargs: Any) -> Any:  # the round's render has a frame to compute
        proposals, probes = real(*args, **kwargs)
        return [{**p, "probed": []} for p in proposals], probes

    monkeypatch.setattr(pilot, "propose", unprobed)
    transition = jumpy(api)
    render(api, worker, transition["id"])
    started = api.post(f"/api/transitions/{transition['id']}/autofix", json={})
    assert started.status_code == 202
    second = api.post(f"/api/transitions/{transition['id']}/autofix", json={})
    assert second.status_code == 409 and f"autofix {started.json()['id']}" in second.json()["detail"]

    # One step: it probes, applies round 1's edit and starts its render; then it is cancelled mid-round
    from worker.autofix import run_autofix

    run_autofix(queued["autofix"].pop(0))
    mid = api.get(f"/api/autofix/{started.json()['id']}").json()
    assert mid["status"] == "running" and len(mid["rounds"]) == 1 and mid["rounds"][0]["after"] is None
    waited = mid["render_id"]
    cancelled = api.post(f"/api/autofix/{started.json()['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert api.get(f"/api/renders/{waited}").json()["status"] == "cancelled"
    worker()  # what was queued runs, and nothing more happens to the cancelled run
    final = api.get(f"/api/autofix/{started.json()['id']}").json()
    assert final["status"] == "cancelled" and final["rounds"][0]["outcome"] == "cancelled"
    again = api.post(f"/api/autofix/{started.json()['id']}/cancel")
    assert again.status_code == 422 and "already cancelled" in again.json()["errors"]["status"]
    # a new one may start now
    assert api.post(f"/api/transitions/{transition['id']}/autofix", json={}).status_code == 202


@pytest.mark.parametrize(
    ("body", "field", "limit"),
    [
        ({"max_rounds": 0}, "max_rounds", "greater than or equal to 1"),
        ({"max_rounds": 11}, "max_rounds", "less than or equal to 10"),
        ({"budget_frames": 0}, "budget_frames", "greater than or equal to 1"),
        ({"target_smoothness": 1.5}, "target_smoothness", "less than or equal to 1"),
        ({"rounds": 3}, "rounds", "not a known field"),
    ],
)
def test_bad_autopilot_input_is_a_422_naming_the_field(
    api: TestClient, body: dict[str, Any], field: str, limit: str
) -> None:
    transition = api.post("/api/transitions", json={"start_prompt": CITY, "end_prompt": FOREST}).json()
    response = api.post(f"/api/transitions/{transition['id']}/autofix", json=body)
    assert response.status_code == 422
    assert limit in response.json()["errors"][field]
    assert api.get("/api/autofix/1").status_code == 404  # nothing was saved


class Died(BaseException):
    """The worker process dies (not an error the step could report)."""


def test_a_worker_that_dies_after_applying_a_round_resumes_it_without_a_second_edit(
    api: TestClient, worker: Any, queued: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import update

    import worker.autofix as pilot
    from infra.db import new_session
    from infra.tables import Autofix
    from worker.autofix import run_autofix

    transition = jumpy(api)
    render(api, worker, transition["id"])
    started = api.post(f"/api/transitions/{transition['id']}/autofix", json={"max_rounds": 1}).json()
    real = pilot.rendering.start_render

    def die(*args: Any, **kwargs: Any) -> Any:
        raise Died

    monkeypatch.setattr(pilot.rendering, "start_render", die)
    with pytest.raises(Died):  # the round's edit is made, then the worker dies before its render
        run_autofix(queued["autofix"].pop(0))
    after_crash = api.get(f"/api/transitions/{transition['id']}").json()
    assert after_crash["version"] == transition["version"] + 1
    # Its lease runs out and the reaper queues it again (as recovery does for every job)
    with new_session() as db:
        db.execute(update(Autofix).values(status="queued", lease_token=None))
        db.commit()
    monkeypatch.setattr(pilot.rendering, "start_render", real)
    queued["autofix"].append(started["id"])
    worker()
    run = api.get(f"/api/autofix/{started['id']}").json()
    assert run["status"] == "done", run
    assert len(run["rounds"]) == 1 and run["rounds"][0]["edit_version"] == after_crash["version"]
    assert run["rounds"][0]["outcome"] in ("kept", "reverted")
    edits = api.get(f"/api/transitions/{transition['id']}/edits").json()
    assert sum(1 for e in edits if e["kind"] == "add_keyframe" and "autopilot #" in e["summary"]) == 1  # once
