"""Only model work on the critical path (issue 20 §1): a worker denoises batch k + 1 while batch k is scored,
stored and announced on its second stage (worker/finishing.py), reads the render's status every few
hundred milliseconds instead of every step, and sends previews only while someone watches.

What must still hold: each frame announced once, only once stored and scored, in the planned order; a
worker killed while it stores a batch loses nothing and does nothing twice; cancel stops at the next step
after it is seen."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.live import FAST_RECOVERY, check_every_frame_once, new_transition, running_frames
from tests.support.sse import read_sse
from tests.support.stack import REPO, start_worker, stop
from tests.support.waiting import wait_for

CITY = "a futuristic cityscape"
FOREST = "a girl in a magical forest"


@pytest.fixture
def in_process(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's code runs in this process, on the tiny model, one torch thread."""
    import torch

    from tests.support.isolation import reset_caches

    torch.set_num_threads(1)
    monkeypatch.setenv("SEGUE_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("SEGUE_WORKER_DEVICE", "cpu")
    reset_caches()


def test_with_overlap_each_frame_is_announced_once_in_the_planned_order_after_it_is_stored_and_scored(
    client: TestClient,
    sent_tasks: list[tuple[int, list[int]]],
    in_process: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import worker.render as render_module
    from infra.db import new_session
    from infra.storage import get_store
    from infra.tables import FrameScore
    from worker.finishing import finishing, wait_for_finishing

    body = {"start_prompt": CITY, "end_prompt": FOREST, "frames": 9, "steps": 3, "seed": 4, "batch_size": 2}
    transition = client.post("/api/transitions", json=body).json()
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
    planned = [index for _, indices in sent_tasks for index in indices]
    assert sorted(planned) == list(range(9)) and planned != list(range(9))  # coarse to fine, not 0..8

    announced: list[int] = []
    original = render_module.frame_done

    def checked(frame: Any) -> Any:  # called just before the frame's event is published
        assert get_store().exists(frame.key), f"frame {frame.index} announced before it was stored"
        with new_session() as db:
            scored = db.query(FrameScore).filter(FrameScore.frame_key == frame.key).count()
        assert scored > 0, f"frame {frame.index} announced before it was scored"
        announced.append(frame.index)
        return original(frame)

    monkeypatch.setattr(render_module, "frame_done", checked)
    # The model work of scoring stays on the rendering thread: torch on the second stage at the same time
    # would oversubscribe the cores the denoising already uses.
    scoring_threads: list[str] = []
    score_frames = render_module.score_frames
    monkeypatch.setattr(
        render_module,
        "score_frames",
        lambda *a: (scoring_threads.append(threading.current_thread().name), score_frames(*a))[1],
    )
    handed: list[int] = []
    hand_over = finishing().hand_over
    monkeypatch.setattr(
        finishing(), "hand_over", lambda work: (handed.append(len(announced)), hand_over(work))
    )
    while sent_tasks:
        rid, indices = sent_tasks.pop(0)
        assert render_module.run_batch(rid, indices, overlap=True) == {"rendered": len(indices)}
    wait_for_finishing()

    assert len(handed) == 5 and handed[-1] < 9  # the last batch was handed over before all were announced
    assert scoring_threads == [threading.current_thread().name] * 5
    assert announced == planned
    events = read_sse(client, f"/api/renders/{render_id}/events")
    frames = [json.loads(e["data"])["index"] for e in events if e["event"] == "frame"]
    assert frames == planned
    assert [e["event"] for e in events].count("done") == 1
    detail = client.get(f"/api/renders/{render_id}").json()
    assert detail["status"] == "done" and detail["stats"]["frames_computed"] == 9
    assert not [e for e in events if e["event"] == "preview"]  # nobody watched while it rendered


def test_a_batch_waiting_for_the_stage_when_its_render_fails_is_neither_stored_nor_announced(
    client: TestClient, sent_tasks: list[tuple[int, list[int]]], in_process: None
) -> None:
    import worker.render as render_module
    from infra.db import new_session
    from infra.tables import Render
    from services.rendering import finish_render
    from worker import lease

    body = {"start_prompt": CITY, "end_prompt": FOREST, "frames": 4, "steps": 2, "seed": 4, "batch_size": 2}
    transition = client.post("/api/transitions", json=body).json()
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
    (_, first), (_, second) = sent_tasks
    assert render_module.run_batch(render_id, first) == {"rendered": 2}
    token = lease.new_token()
    rendered = render_module._render(render_id, second, token, lease.pulse())
    assert rendered is not None
    with new_session() as db:  # another batch failed while this one waited for the second stage
        finish_render(db, db.get(Render, render_id), "failed", error="the frame store is full")

    assert render_module._finish(rendered) == 0
    detail = client.get(f"/api/renders/{render_id}").json()
    statuses = {f["index"]: f["status"] for f in detail["frames"]}
    assert {statuses[i] for i in second} == {"pending"}  # as if never claimed: a retry renders them
    assert detail["stats"]["frames_computed"] == 2
    events = read_sse(client, f"/api/renders/{render_id}/events")
    assert events[-1]["event"] == "failed"  # nothing after the final event
    assert sorted(json.loads(e["data"])["index"] for e in events if e["event"] == "frame") == sorted(first)


def test_cancel_is_read_every_few_hundred_ms_not_every_step_and_stops_at_the_next_step(
    in_process: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.render as render_module
    from core.params import PixelSettings
    from engine.pipeline import FrameRequest, RenderCancelled, get_engine
    from infra.config import get_settings
    from worker.render import CANCEL_POLL_SECONDS, CancelWatch

    cancelled = {"now": False}
    monkeypatch.setattr(render_module, "_is_cancelled", lambda render_id: cancelled["now"])
    clock = {"now": 0.0}
    watch = CancelWatch(1, clock=lambda: clock["now"])
    seen: list[int] = []

    def on_step(step: int, total: int, latents: Any) -> None:
        seen.append(step)
        if step == 2:  # the render is cancelled now; the worker reads it at its next poll
            cancelled["now"] = True
        if step == 4:
            clock["now"] += CANCEL_POLL_SECONDS

    engine = get_engine("segue-tiny", models_dir=get_settings().models_dir, device="cpu")
    with pytest.raises(RenderCancelled, match="after step 5 of 10"):
        engine.render(
            PixelSettings(steps=10, seed=3, width=64, height=64),
            [FrameRequest(CITY, FOREST, 0.5)],
            on_step=on_step,
            should_cancel=watch,
        )
    assert seen == [0, 1, 2, 3, 4]  # stopped right after the step at which the cancel was seen
    assert watch.reads == 2  # one read before the first step, one after the poll interval: not one per step


def test_previews_are_sent_while_an_event_stream_watches_and_not_otherwise(
    client: TestClient, sent_tasks: list[tuple[int, list[int]]], in_process: None
) -> None:
    from infra.watching import watch, watched
    from worker.render import run_batch

    body = {"start_prompt": CITY, "end_prompt": FOREST, "frames": 2, "steps": 5, "seed": 4, "batch_size": 2}
    renders = []
    for watching in (False, True):
        transition = client.post("/api/transitions", json=body | {"seed": 4 + watching}).json()
        render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
        assert not watched(render_id)
        if watching:
            watch(render_id)  # what the render's SSE stream does on each read
            assert watched(render_id)
        while sent_tasks:
            run_batch(*sent_tasks.pop(0))
        events = read_sse(client, f"/api/renders/{render_id}/events")
        renders.append([e for e in events if e["event"] == "preview"])
    assert renders[0] == [] and len(renders[1]) == 1  # every 5 steps: one preview of the one batch


STALL_IN_STORE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import infra.storage

    marker = Path(sys.argv.pop(1))

    def stall(self, key, data):  # the second stage reaches the frame store, then hangs there
        marker.touch()
        time.sleep(3600)

    infra.storage.LocalFrameStore.write = stall
    from celery.__main__ import main
    sys.argv[0] = "celery"
    sys.exit(main())
    """
)


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_worker_killed_while_it_stores_a_batch_loses_no_frame_and_announces_none_twice(
    stack_factory: Any, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli import worker_command
    from infra.config import get_settings

    for key, value in FAST_RECOVERY.items():
        monkeypatch.setenv(key, value)
    stack = stack_factory(mode="distributed", database=database)
    stop(stack.worker)  # its place is taken by one whose frame store hangs
    marker = tmp_path / "storing"
    command = worker_command(get_settings(), "stalls")[3:]  # celery's own arguments, after "-m celery"
    with (tmp_path / "stalling.log").open("wb") as out:
        stalling = subprocess.Popen(
            [sys.executable, "-c", STALL_IN_STORE, str(marker), *command],
            cwd=REPO,
            env=stack.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = stack.client
    transition = new_transition(client, frames=6, steps=3, batch_size=2, seed=5)
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
    wait_for(marker.exists, timeout=180, what="the worker's second stage to start storing a batch")
    held = running_frames(client.get(f"/api/renders/{render_id}").json())
    stalling.send_signal(signal.SIGKILL)
    stalling.wait()
    assert held, "the batch being stored is still held by the dead worker"
    detail = client.get(f"/api/renders/{render_id}").json()
    assert detail["stats"]["frames_computed"] == 0 and detail["status"] == "running"

    second = start_worker(stack.env, tmp_path / "worker-2.log")
    try:
        wait_for(
            lambda: client.get(f"/api/renders/{render_id}").json()["status"] == "done",
            timeout=180,
            what="the render to finish on the second worker",
        )
        detail = client.get(f"/api/renders/{render_id}").json()
        events = read_sse(client, f"/api/renders/{render_id}/events")
        check_every_frame_once(detail, events, tmp_path / "data")
    finally:
        stop(second)
