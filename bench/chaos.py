"""Kill render workers with SIGKILL at random points, many times, and check that nothing is lost.

    python -m bench.chaos [--runs 20] [--mode distributed|embedded] [--database URL] [--lease 4]

Distributed mode: a web server (`segue run`, no embedded worker) and two `segue worker` processes on Redis
(127.0.0.1:6379, a private namespace and queue) and SQLite (or `--database`, e.g. a PostgreSQL URL).
Each run renders a transition of 6–12 frames, waits a random 0–4 s (model loading, inside a batch,
between batches, while frames are written...), kills one of the workers with SIGKILL and starts a
replacement at once. Embedded mode kills the whole `segue run` (web server and its worker) and starts it
again on the same data dir.

Checked every run: the render ends `done`, every frame is computed exactly once (`frames_computed`), each
frame's event arrives exactly once on the stream, and every stored image decodes whole. Printed: how many
runs held, and how long the killed batch took to come back (kill → its frames done, kill → render done),
p50 / max. The short version of this is tests/worker/test_crashes.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from core.sse import parse_sse

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _post(url: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body or {}).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.load(response)


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _events(url: str) -> list[dict[str, str]]:
    with urllib.request.urlopen(url, timeout=60) as response:
        return list(parse_sse(response.read().decode().splitlines()))


class Cluster:
    def __init__(self, mode: str, data: Path, database: str | None, lease: float) -> None:
        self.mode = mode
        self.data = data
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")},
            "SEGUE_MODE": mode,
            "SEGUE_DATA_DIR": str(data),
            "SEGUE_PORT": str(self.port),
            "SEGUE_MODEL": "segue-tiny",
            "SEGUE_REDIS_NAMESPACE": f"segue-chaos-{uuid.uuid4().hex[:6]}",
            "SEGUE_RENDER_QUEUE": f"render-chaos-{uuid.uuid4().hex[:6]}",
            "SEGUE_LEASE_SECONDS": str(lease),
            "SEGUE_REAP_SECONDS": "1",
            "SEGUE_HEARTBEAT_SECONDS": "1",
            "SEGUE_EVENT_POLL_SECONDS": "0.1",
            "SEGUE_WORKER_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
        }
        if database:
            self.env["SEGUE_DATABASE_URL"] = database
        if mode == "distributed":
            self.env["SEGUE_EMBEDDED_WORKER"] = "false"
        self.log = (data / "chaos.log").open("ab")
        self.web: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_web(self) -> None:
        self.web = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "run"],
            cwd=REPO,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait(lambda: _get(self.url + "/api/transitions") is not None, 120, "the web server")

    def start_worker(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "app.cli", "worker"]
        worker = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self.workers.append(worker)
        return worker

    def kill(self) -> None:
        """SIGKILL: a worker in distributed mode, the whole `segue run` in embedded mode."""
        if self.mode == "embedded":
            assert self.web is not None
            os.killpg(self.web.pid, signal.SIGKILL)
            self.web.wait()
            self.start_web()
            return
        alive = [w for w in self.workers if w.poll() is None]
        victim = random.choice(alive)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.workers.remove(victim)
        self.start_worker()

    def stop(self) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if self.web is not None:
            os.killpg(self.web.pid, signal.SIGTERM)
            try:
                self.web.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.web.pid, signal.SIGKILL)


def one_run(cluster: Cluster, rng: random.Random) -> dict[str, Any]:
    frames = rng.randint(6, 12)
    body = {
        "start_prompt": "a futuristic cityscape",
        "end_prompt": f"a girl in a magical forest {rng.randint(0, 10**6)}",  # new keys: nothing reused
        "frames": frames,
        "steps": 20,
        "batch_size": 2,
        "width": 96,
        "height": 96,
        "seed": rng.randint(0, 1000),
    }
    transition = _post(cluster.url + "/api/transitions", body)
    render_id = _post(cluster.url + f"/api/transitions/{transition['id']}/renders")["id"]
    time.sleep(rng.uniform(0.0, 4.0))
    before = _get(cluster.url + f"/api/renders/{render_id}")
    held = [f["index"] for f in before["frames"] if f["status"] == "running"]
    killed = time.monotonic()
    cluster.kill()
    back = None
    if held:
        _wait(
            lambda: all(
                f["status"] == "done"
                for f in _get(cluster.url + f"/api/renders/{render_id}")["frames"]
                if f["index"] in held
            ),
            300,
            "the lost frames to be rendered again",
            interval=0.2,
        )
        back = time.monotonic() - killed
    detail = _wait(
        lambda: (d := _get(cluster.url + f"/api/renders/{render_id}"))["status"] in ("done", "failed") and d,
        300,
        "the render to end",
    )
    done_after = time.monotonic() - killed
    events = _events(cluster.url + f"/api/renders/{render_id}/events")
    announced = Counter(json.loads(e["data"])["index"] for e in events if e["event"] == "frame")
    problems = []
    if detail["status"] != "done":
        problems.append(f"status {detail['status']}: {detail.get('error')}")
    if detail["stats"]["frames_computed"] != frames:
        problems.append(f"computed {detail['stats']['frames_computed']} of {frames}")
    if announced != Counter(range(frames)):
        problems.append(f"frame events {dict(announced)}")
    for frame in detail["frames"]:
        if frame["url"]:
            path = cluster.data / "frames" / frame["url"].removeprefix("/media/frames/")
            from PIL import Image

            try:
                with Image.open(io.BytesIO(path.read_bytes())) as image:
                    image.load()
            except Exception as exc:
                problems.append(f"frame {frame['index']}: {exc}")
    return {
        "frames": frames,
        "held": held,
        "back_seconds": back,
        "done_seconds": done_after,
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mode", choices=("distributed", "embedded"), default="distributed")
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: SQLite in a temp dir)")
    parser.add_argument("--lease", type=float, default=4.0, help="SEGUE_LEASE_SECONDS for the run")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    random.seed(args.seed)

    with tempfile.TemporaryDirectory(prefix="segue-chaos-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        subprocess.run(
            [sys.executable, "-m", "engine.cli", "build-tiny", str(data / "models" / "segue-tiny")],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        cluster = Cluster(args.mode, data, args.database, args.lease)
        results = []
        try:
            cluster.start_web()
            if args.mode == "distributed":
                cluster.start_worker()
                cluster.start_worker()
            for run in range(1, args.runs + 1):
                result = one_run(cluster, rng)
                results.append(result)
                state = "ok" if not result["problems"] else "FAILED " + "; ".join(result["problems"])
                back = f"{result['back_seconds']:.1f} s" if result["back_seconds"] is not None else "-"
                holding = result["held"] or "nothing"
                print(
                    f"run {run:2d}: {result['frames']:2d} frames, killed holding {holding}, lost frames "
                    f"back after {back}, done {result['done_seconds']:.1f} s after the kill: {state}",
                    flush=True,
                )
        finally:
            cluster.stop()
    held = [r for r in results if r["held"]]
    backs = [r["back_seconds"] for r in held]
    dones = [r["done_seconds"] for r in results]
    ok = sum(1 for r in results if not r["problems"])
    print()
    print(
        "| mode | runs | held (every frame exactly once) | kills mid-batch | lost batch back p50 / max | "
        "kill → done p50 / max |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.mode} (lease {args.lease:g} s) | {len(results)} | {ok} | {len(held)} | "
        + (f"{statistics.median(backs):.1f} / {max(backs):.1f} s" if backs else "-")
        + f" | {statistics.median(dones):.1f} / {max(dones):.1f} s |"
    )
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
