"""Many viewers and several renders at once on one web process: event latency, request latency, exactly once.

    python -m bench.load [--viewers 20] [--renders 5] [--workers 2] [--frames 12] [--database URL]

Starts a web server (`segue run`, distributed mode, no embedded worker) and `--workers` render workers on
Redis (127.0.0.1:6379, a private namespace and queue) and SQLite (or `--database`). Starts `--renders`
renders at once and opens `--viewers` SSE streams (/api/renders/{id}/events), spread over the renders,
while a prober requests the API (GET a render, list transitions, /healthz) every 50 ms. Prints:

- event latency: from the event's publication (the Redis Stream id is the server's clock in ms) to its
  arrival at a viewer, p50 / p95 / max over every frame event of every viewer;
- request latency of the prober's requests, p50 / p95 / max;
- whether every viewer got every frame event of its render exactly once, and a final event.

The 200-viewer check of the issue is tests/bench/test_load.py (it uses `follow` from here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from core.sse import EventReader

REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def follow(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """Read one SSE stream to its final event: frame indices in order, latencies (s), the final event."""
    frames: list[int] = []
    latencies: list[float] = []
    final = None
    reader = EventReader()
    async with client.stream("GET", url, timeout=httpx.Timeout(600, connect=60)) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            message = reader.feed(line)
            if message is None:
                continue
            event, data, event_id = message["event"], message.get("data"), message.get("id")
            if event == "frame" and data:
                frames.append(json.loads(data)["index"])
                if event_id and "-" in event_id:
                    latencies.append(time.time() - int(event_id.split("-")[0]) / 1000)
            if event in ("done", "failed", "cancelled"):
                final = event
                break
    return {"frames": frames, "latencies": latencies, "final": final}


async def probe(
    client: httpx.AsyncClient, base: str, render_ids: list[int], stop: asyncio.Event
) -> list[float]:
    timings: list[float] = []
    paths = [f"/api/renders/{render_ids[0]}", "/api/transitions?limit=20", "/healthz"]
    turn = 0
    while not stop.is_set():
        started = time.perf_counter()
        await client.get(base + paths[turn % len(paths)], timeout=60)
        timings.append(time.perf_counter() - started)
        turn += 1
        await asyncio.sleep(0.05)
    return timings


async def run_load(base: str, viewers: int, renders: int, frames: int, steps: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=viewers + 20, max_keepalive_connections=viewers + 20)
    async with httpx.AsyncClient(limits=limits) as client:
        render_ids = []
        for number in range(renders):
            body = {
                "start_prompt": "a futuristic cityscape",
                "end_prompt": f"a girl in a magical forest, take {number} {time.time()}",
                "frames": frames,
                "steps": steps,
                "batch_size": 1,
                "seed": number,
            }
            created = (await client.post(base + "/api/transitions", json=body)).json()
            started = await client.post(base + f"/api/transitions/{created['id']}/renders")
            started.raise_for_status()
            render_ids.append(started.json()["id"])
        stop = asyncio.Event()
        prober = asyncio.create_task(probe(client, base, render_ids, stop))
        watched = [render_ids[i % renders] for i in range(viewers)]
        began = time.perf_counter()
        results = await asyncio.gather(
            *(follow(client, base + f"/api/renders/{rid}/events") for rid in watched), return_exceptions=True
        )
        seconds = time.perf_counter() - began
        stop.set()
        timings = await prober
    failures = []
    latencies: list[float] = []
    for rid, result in zip(watched, results, strict=True):
        if isinstance(result, BaseException):
            failures.append(f"render {rid}: {type(result).__name__}: {result}")
            continue
        latencies += result["latencies"]
        if Counter(result["frames"]) != Counter(range(frames)) or result["final"] != "done":
            failures.append(f"render {rid}: frames {Counter(result['frames'])}, final {result['final']}")
    return {
        "viewers": viewers,
        "renders": renders,
        "frames": frames,
        "seconds": seconds,
        "event_latency": latencies,
        "request_latency": timings,
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    from bench.chaos import Cluster, _wait

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--renders", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--database", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="segue-load-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        subprocess.run(
            [sys.executable, "-m", "engine.cli", "build-tiny", str(data / "models" / "segue-tiny")],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        cluster = Cluster("distributed", data, args.database, lease=30)
        try:
            cluster.start_web()
            for _ in range(args.workers):
                cluster.start_worker()
            _wait(lambda: _healthy(cluster.url, args.workers), 120, "the workers' heartbeats", interval=0.5)
            result = asyncio.run(run_load(cluster.url, args.viewers, args.renders, args.frames, args.steps))
        finally:
            cluster.stop()
    events, requests = result["event_latency"], result["request_latency"]
    ok = not result["failures"]
    print(
        "| viewers | renders | workers | frames each | frame events | event latency p50 / p95 / max | "
        "requests | request latency p50 / p95 / max | every event exactly once |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.viewers} | {args.renders} | {args.workers} | {args.frames} | {len(events)} | "
        f"{percentile(events, 0.5) * 1000:.0f} / {percentile(events, 0.95) * 1000:.0f} / "
        f"{max(events, default=float('nan')) * 1000:.0f} ms | {len(requests)} | "
        f"{percentile(requests, 0.5) * 1000:.0f} / {percentile(requests, 0.95) * 1000:.0f} / "
        f"{max(requests, default=float('nan')) * 1000:.0f} ms | {'yes' if ok else 'NO'} |"
    )
    for failure in result["failures"][:10]:
        print("  ", failure)
    return 0 if ok else 1


def _healthy(url: str, workers: int) -> bool:
    body = httpx.get(url + "/healthz", timeout=5).json()
    return int(body.get("workers", {}).get("alive", 0)) >= workers


if __name__ == "__main__":
    raise SystemExit(main())
