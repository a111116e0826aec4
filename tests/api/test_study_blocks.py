"""A study compared with each U-Net block (docs/studies.md), on SQLite and PostgreSQL: the button and the API
queue a leased worker job (run here in-process on the tiny model) that stores one reading per frame key x
block x noise level, frames shared between renders read once; the results grow a row per block and noise
level holding people's agreement; asking again reads nothing twice; 409 while one runs; owner only."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.support.api import bearer, create, make_link
from tests.support.renders import finish_by_hand
from tests.support.studies import OWNER_SECRET, answer_all, finished_render, participant, study

TINY_BLOCKS = ["down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.0", "up_blocks.1"]
TIMESTEPS = [50, 200, 500, 800]
#: The reading people agree with in the planted study.
PLANTED = "unet/mid_block@t500"


@pytest.fixture
def blocks_sent(monkeypatch: pytest.MonkeyPatch, models_dir: Any) -> list[int]:
    """Record the queued jobs instead of sending them; the worker runs them in-process on the tiny model."""
    import torch

    from tests.support.isolation import reset_caches

    torch.set_num_threads(1)
    monkeypatch.setenv("SEGUE_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("SEGUE_WORKER_DEVICE", "cpu")
    reset_caches()
    sent: list[int] = []
    monkeypatch.setattr("infra.queue.send_study_blocks", sent.append)
    return sent


def rendered_again(client: TestClient, render_id: int) -> int:
    """A second render of the same transition and settings: the same frames (the same keys)."""
    from infra.db import new_session
    from infra.tables import Render

    with new_session() as db:
        render = db.get(Render, render_id)
        assert render is not None
        tid = render.transition_id
    again = client.post(f"/api/transitions/{tid}/renders").json()["id"]
    finish_by_hand(again)
    return int(again)


def frame_keys(render_ids: list[int]) -> set[str]:
    from infra.db import new_session
    from infra.tables import Frame

    with new_session() as db:
        return set(
            db.scalars(select(Frame.key).where(Frame.render_id.in_(render_ids), Frame.status == "done"))
        )


def readings(keys: set[str]) -> dict[tuple[str, str], np.ndarray]:
    from infra.db import new_session
    from infra.tables import FrameScore

    with new_session() as db:
        rows = db.execute(
            select(FrameScore.frame_key, FrameScore.scorer, FrameScore.embedding).where(
                FrameScore.frame_key.in_(keys), FrameScore.scorer.startswith("unet/")
            )
        ).all()
    return {(key, scorer): np.frombuffer(blob, dtype="<f4") for key, scorer, blob in rows}


def test_each_block_is_read_once_per_frame_and_the_results_grow_a_row_per_block_and_noise_level(
    client: TestClient, blocks_sent: list[int]
) -> None:
    from infra.db import new_session
    from infra.tables import Frame, FrameScore
    from worker.block_features import run_study_blocks

    first = finished_render(client, frames=6)
    shared = rendered_again(client, first)
    other = finished_render(client, frames=6, seed=4)
    made = study(client, [first, shared, other], tasks=["triplets"], triplets=12, seed=5)
    sid = made["id"]
    keys = frame_keys([first, shared, other])
    assert len(keys) == 12  # the second render of the first transition holds the same 6 frames

    assert client.get(f"/api/studies/{sid}/blocks").json()["status"] == "none"
    asked = client.post(f"/api/studies/{sid}/blocks")
    assert asked.status_code == 202 and asked.json()["status"] == "queued"
    assert asked.json()["timesteps"] == TIMESTEPS
    busy = client.post(f"/api/studies/{sid}/blocks")
    assert busy.status_code == 409 and "being read already" in busy.json()["detail"]
    assert len(blocks_sent) == 1

    done = run_study_blocks(blocks_sent[0])
    state = client.get(f"/api/studies/{sid}/blocks").json()
    assert state["status"] == "done", state
    per_frame = len(TINY_BLOCKS) * len(TIMESTEPS)
    assert (state["frames_total"], state["frames_done"]) == (12, 12)
    assert state["readings"] == done["readings"] == 12 * per_frame
    stored = readings(keys)
    names = {f"unet/{b}@t{t}" for b in TINY_BLOCKS for t in TIMESTEPS}
    assert set(stored) == {(k, n) for k in keys for n in names}  # one row per frame key x block x t
    with new_session() as db:  # and no more: a shared frame was read once
        count = db.scalar(select(func.count()).select_from(FrameScore).where(FrameScore.scorer.in_(names)))
        assert count == 12 * per_frame
        key_of = {(r, i): k for r, i, k in db.execute(select(Frame.render_id, Frame.index, Frame.key)).all()}
    widths = {n: {len(stored[(k, n)]) for k in keys} for n in names}
    assert all(len(w) == 1 and w.pop() > 1 for w in widths.values())  # one vector size per block
    # Two different pictures read differently.
    assert not np.allclose(stored[(key_of[(first, 0)], PLANTED)], stored[(key_of[(first, 5)], PLANTED)])

    # People answer as the mid block at t = 500 sees the frames: that row matches every answer.
    def as_planted(item: dict[str, Any]) -> int:
        frames = [f["index"] for f in item["frames"]]
        vectors = [stored[(key_of[(item["render_id"], i)], PLANTED)] for i in frames]

        def cos(a: np.ndarray, b: np.ndarray) -> float:
            return 1.0 - float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

        far = [
            cos(vectors[i], vectors[(i + 1) % 3]) + cos(vectors[i], vectors[(i + 2) % 3]) for i in range(3)
        ]
        return frames[far.index(max(far))]

    for _ in range(2):
        answer_all(client, participant(client, sid)["token"], as_planted)
    results = client.get(f"/api/studies/{sid}/results").json()
    rows = {r["name"]: r for r in results["distances"]}
    block_rows = [r["name"] for r in results["distances"] if r["name"].startswith("unet/")]
    assert block_rows == [f"unet/{b}@t{t}" for b in TINY_BLOCKS for t in TIMESTEPS]  # U-Net order, then t
    assert rows[PLANTED]["label"] == "U-Net mid_block, t=500"
    assert rows[PLANTED]["triplet_accuracy"] == 1.0 and rows[PLANTED]["triplet_answers"] == 24
    assert all(rows[n]["triplet_answers"] == 24 for n in names)
    assert min(rows[n]["triplet_accuracy"] for n in names) < 1.0  # the blocks do not all see alike

    page = client.get(f"/studies/{sid}")
    assert page.status_code == 200
    assert f'data-distance="{PLANTED}"><td>U-Net mid_block, t=500</td>' in page.text
    assert 'id="block-grid"' in page.text and page.text.count("<tr data-block=") == len(TINY_BLOCKS)
    assert 'data-t="500">1.00</td>' in page.text and "best" in page.text
    assert "style=" not in page.text and "<script>" not in page.text

    # Asked again: every frame is stored, nothing is read twice.
    again = client.post(f"/api/studies/{sid}/blocks")
    assert again.status_code == 202 and len(blocks_sent) == 2
    assert run_study_blocks(blocks_sent[1])["readings"] == 0
    state = client.get(f"/api/studies/{sid}/blocks").json()
    assert (state["status"], state["frames_done"], state["readings"]) == ("done", 12, 0)
    assert len(readings(keys)) == 12 * per_frame
    # The confusion map's scorer choices stay the map's.
    scorers = client.get(f"/api/renders/{first}/scores").json()["scorers"]
    assert not any(s.startswith("unet/") for s in scorers)


def test_the_button_queues_it_shows_progress_and_loads_the_new_rows(
    client: TestClient, blocks_sent: list[int]
) -> None:
    from worker.block_features import run_study_blocks

    sid = study(client, [finished_render(client, frames=5)], triplets=3)["id"]
    page = client.get(f"/studies/{sid}").text
    assert 'id="compare-blocks"' in page and f'hx-post="/studies/{sid}/blocks"' in page
    assert 'id="block-grid"' not in page

    htmx = {"HX-Request": "true"}
    panel = client.post(f"/studies/{sid}/blocks", headers=htmx)
    assert panel.status_code == 200 and 'data-status="queued"' in panel.text
    assert f'hx-get="/studies/{sid}/blocks?poll=true" hx-trigger="every 1s"' in panel.text
    assert 'id="compare-blocks"' not in panel.text  # no second request while one runs
    twice = client.post(f"/studies/{sid}/blocks", headers=htmx)  # a double click: progress, no second job
    assert 'data-status="queued"' in twice.text and len(blocks_sent) == 1

    run_study_blocks(blocks_sent[0])
    finished = client.get(f"/studies/{sid}/blocks?poll=true", headers=htmx).text
    assert 'data-status="done"' in finished and 'hx-select="#results"' in finished  # reload the results
    assert 'hx-trigger="every' not in finished
    reloaded = client.get(f"/studies/{sid}").text
    assert 'hx-select="#results"' not in reloaded  # the page itself does not reload again
    assert (
        'data-distance="unet/up_blocks.1@t800"' in reloaded
        and "Compare with each U-Net block again" in reloaded
    )

    plain = client.post(f"/studies/{sid}/blocks", follow_redirects=False)  # a form post without htmx
    assert plain.status_code == 303 and plain.headers["location"] == f"/studies/{sid}#blocks"


def test_a_queue_that_is_away_fails_the_request_with_a_reason(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def away(_job_id: int) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr("infra.queue.send_study_blocks", away)
    sid = study(client, [finished_render(client, frames=4)], triplets=2)["id"]
    refused = client.post(f"/api/studies/{sid}/blocks")
    assert refused.status_code == 503
    state = client.get(f"/api/studies/{sid}/blocks").json()
    assert state["status"] == "failed" and "queue is unreachable" in state["error"]
    panel = client.post(f"/studies/{sid}/blocks", headers={"HX-Request": "true"})
    assert (
        panel.status_code == 200
        and "queue is unreachable" in panel.text
        and 'id="compare-blocks"' in panel.text
    )
    assert client.post("/api/studies/999999/blocks").status_code == 404


def test_only_the_owner_compares_blocks(app_with: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = {"Authorization": f"Bearer {OWNER_SECRET}", "Origin": "http://testserver"}
    app = app_with(host="0.0.0.0", owner_token=OWNER_SECRET, max_token_failures="1000")
    sent: list[int] = []
    monkeypatch.setattr("infra.queue.send_study_blocks", sent.append)
    with (
        TestClient(app, headers=owner) as researcher,
        TestClient(app, headers={"Origin": "http://testserver"}) as other,
    ):
        sid = study(researcher, [finished_render(researcher, frames=4)], triplets=2)["id"]
        link = make_link(researcher, create(researcher)["id"], "edit")
        token = participant(researcher, sid)["token"]
        paths = [f"/api/studies/{sid}/blocks", f"/studies/{sid}/blocks"]
        for method, path in [(m, p) for p in paths for m in ("POST", "GET")]:
            assert other.request(method, path, headers=bearer(link)).status_code == 403, path
            assert (
                other.request(method, path, headers={"Authorization": f"Bearer {token}"}).status_code == 404
            )
        assert sent == []
        assert researcher.post(f"/api/studies/{sid}/blocks").status_code == 202 and len(sent) == 1


def test_a_frame_whose_picture_is_gone_is_left_out(client: TestClient, blocks_sent: list[int]) -> None:
    from infra.storage import get_store
    from worker.block_features import run_study_blocks

    render_id = finished_render(client, frames=4)
    sid = study(client, [render_id], triplets=2)["id"]
    keys = frame_keys([render_id])
    gone = sorted(keys)[0]
    store = get_store()
    store.path(gone).unlink()  # type: ignore[attr-defined]  (the tests' store is a folder)
    assert not store.exists(gone)
    assert client.post(f"/api/studies/{sid}/blocks").status_code == 202
    run_study_blocks(blocks_sent[0])
    state = client.get(f"/api/studies/{sid}/blocks").json()
    assert (state["status"], state["frames_total"], state["frames_done"]) == ("done", 3, 3), state
    assert {key for key, _ in readings(keys)} == keys - {gone}
