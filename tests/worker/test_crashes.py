"""A worker killed mid-batch (SIGKILL) loses nothing (issue 13, finding 1).

Its frames are held under a lease that only its heartbeat extended; once the lease runs out the reaper
(in the web app and in every live worker) queues them again, and another worker renders them: every frame
exactly once, within a minute of a worker being available — in distributed mode (Redis would otherwise
keep the batch for its visibility timeout) and in embedded mode (whose filesystem broker had already
handed the message out: a restarted `segue run` picks up what its dead worker left).

The short versions run in CI; `python -m bench.chaos` kills workers at random points 20 times.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.live import FAST_RECOVERY, check_every_frame_once, new_transition, running_frames
from tests.support.sse import parse_sse_text, read_sse
from tests.support.stack import REPO, start_worker
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SLOW_BATCHES = {"frames": 8, "steps": 12, "batch_size": 2, "width": 128, "height": 128, "seed": 5}


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_killed_workers_batch_is_rendered_by_another_worker_exactly_once(
    stack_factory: Any, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in FAST_RECOVERY.items():
        monkeypatch.setenv(key, value)
    stack = stack_factory(mode="distributed", database=database)
    client = stack.client
    transition = new_transition(client, **SLOW_BATCHES)
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]

    held = wait_for(
        lambda: running_frames(client.get(f"/api/renders/{render_id}").json()),
        interval=0.05,
        what="the worker to take a batch",
    )
    time.sleep(random.uniform(0.0, 0.5))  # somewhere inside the batch
    stack.worker.send_signal(signal.SIGKILL)
    stack.worker.wait()
    killed_at = time.monotonic()
    assert client.get(f"/api/renders/{render_id}").json()["status"] == "running"

    # Another worker becomes available; the dead one's frames are leased to nobody after ~4 s.
    second = start_worker(stack.env, tmp_path / "worker-2.log")
    try:
        started = time.monotonic()
        wait_for(
            lambda: all(
                f["status"] == "done" or f["index"] not in held
                for f in client.get(f"/api/renders/{render_id}").json()["frames"]
            ),
            timeout=240,  # a bound for a hung test, not a speed target (reliability docs measure it)
            interval=0.2,
            what="the killed worker's frames to be rendered again",
        )
        recovered = time.monotonic() - started
        wait_for(
            lambda: client.get(f"/api/renders/{render_id}").json()["status"] == "done",
            timeout=180,
            what="the render to finish",
        )
        detail = client.get(f"/api/renders/{render_id}").json()
        events = read_sse(client, f"/api/renders/{render_id}/events")
        check_every_frame_once(detail, events, tmp_path / "data")
        print(f"lost frames {held} back {recovered:.1f} s after a second worker started")
        print(f"(and {time.monotonic() - killed_at:.1f} s after the kill)")
        health = client.get("/healthz").json()
        assert health["workers"]["alive"] == 1, health  # the killed worker is not counted
    finally:
        second.terminate()
        second.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _segue_run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "run"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: web server and embedded worker die together
        )


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _post(url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _up(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/api/transitions", timeout=2).close()
        return True
    except OSError:
        return False


def test_a_restarted_segue_run_finishes_what_its_killed_worker_left(tmp_path: Path, models_dir: Path) -> None:
    """Embedded mode: `segue run` (web server + its worker) is killed with SIGKILL mid-batch and started
    again on the same data dir; the render finishes with every frame exactly once."""
    port = _free_port()
    data = tmp_path / "data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")},
        **FAST_RECOVERY,
        "SEGUE_DATA_DIR": str(data),
        "SEGUE_PORT": str(port),
        "SEGUE_MODELS_DIR": str(models_dir),
        "SEGUE_MODEL": "segue-tiny",
        "SEGUE_EVENT_POLL_SECONDS": "0.1",
        "SEGUE_WORKER_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "segue-run.log"
    first = _segue_run(env, log)
    try:
        wait_for(lambda: _up(url), timeout=90, what="segue run to serve")
        transition = _post(
            url + "/api/transitions", {"start_prompt": "a city", "end_prompt": "a forest", **SLOW_BATCHES}
        )
        render_id = _post(url + f"/api/transitions/{transition['id']}/renders")["id"]
        held = wait_for(
            lambda: running_frames(_get(url + f"/api/renders/{render_id}")),
            timeout=120,
            interval=0.05,
            what="the embedded worker to take a batch",
        )
        time.sleep(random.uniform(0.0, 0.5))
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    second = _segue_run(env, log)
    try:
        started = time.monotonic()
        wait_for(lambda: _up(url), timeout=90, what="segue run to serve again")
        detail = wait_for(
            lambda: (d := _get(url + f"/api/renders/{render_id}"))["status"] == "done" and d,
            timeout=240,
            what="the render to finish after the restart",
        )
        print(f"finished {time.monotonic() - started:.1f} s after the restart")
        with urllib.request.urlopen(url + f"/api/renders/{render_id}/events", timeout=30) as response:
            events = parse_sse_text(response.read().decode())
        check_every_frame_once(detail, events, data)
        assert any(f["index"] in held for f in detail["frames"])
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        try:
            second.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
