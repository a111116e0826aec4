"""4-5. Segue end to end: the app, a real worker, its SSE events (embedded and distributed)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.cli import die_with_parent
from bench.throughput.common import (
    END_PROMPT,
    PG_ADMIN_URL,
    REDIS_URL,
    REPO,
    START_PROMPT,
    TERMINAL_EVENTS,
    Run,
    log,
)
from core.sse import parse_sse

# --------------------------------------------------------------------------------------------------------
# The app, in-process, with real worker processes


def reset_app_caches() -> None:
    """As tests/conftest.reset_caches: forget the settings, database engines, buses and queue client."""
    from infra import bus, queue
    from infra.config import get_settings
    from infra.db import dispose_engines

    get_settings.cache_clear()
    dispose_engines()
    bus._bus_for.cache_clear()
    queue._client = None


@contextlib.contextmanager
def environment(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) environment variables, resetting the app's caches on the way in and out."""
    saved = {key: os.environ.get(key) for key in values}
    _set_environment(values)
    try:
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    reset_app_caches()


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def handled(self) -> int:
        """Batches this worker finished (from its Celery log)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return 0
        return text.count("succeeded in")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_worker(name: str, log_path: Path, threads: int) -> Worker:
    from app.cli import worker_command
    from infra.config import get_settings

    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "SEGUE_WORKER_THREADS": str(threads),
    }
    command = worker_command(get_settings(), name)
    out = log_path.open("wb")
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
    )
    out.close()
    return Worker(process, log_path)


def stop_worker(worker: Worker) -> None:
    process = worker.process
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database (dropped afterwards)."""
    import sqlalchemy

    name = f"segue_bench_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        reset_app_caches()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def clean_redis(namespace: str, queue: str) -> None:
    """Delete this run's own Redis keys (its namespace and its queue); nothing else is touched."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        keys += [queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
        client.delete(*keys)
        with contextlib.suppress(Exception):  # kombu's binding deadlines, if it kept one for this queue
            stale = [m for m in client.zrange("_kombu.binding_deadlines", 0, -1) if queue.encode() in m]
            if stale:
                client.zrem("_kombu.binding_deadlines", *stale)
    finally:
        client.close()


@dataclass
class Stack:
    client: Any
    workers: list[Worker]
    mode: str
    threads: int


@contextlib.contextmanager
def app_stack(
    args: argparse.Namespace, models_dir: Path, root: Path, mode: str, workers: int, threads: int
) -> Iterator[Stack]:
    """Segue's app in-process (TestClient) with `workers` real worker processes, all of its own."""
    tag = uuid.uuid4().hex[:8]
    data = root / f"{mode}-{workers}-{tag}"
    values: dict[str, str | None] = {
        "SEGUE_MODE": mode,
        "SEGUE_DATA_DIR": str(data),
        "SEGUE_MODEL": args.model,
        "SEGUE_MODELS_DIR": str(models_dir),
        "SEGUE_FRAME_STORE_DIR": None,
        "SEGUE_BROKER_URL": None,
        "SEGUE_EMBEDDED_WORKER": None,
        "SEGUE_RENDER_QUEUE": f"render-bench-{tag}",
        "SEGUE_REDIS_URL": REDIS_URL,
        "SEGUE_REDIS_NAMESPACE": f"segue-bench-{tag}",
        "SEGUE_DATABASE_URL": "",
        "HF_HUB_OFFLINE": "1",
    }
    if args.scorer is not None:
        values["SEGUE_SCORER"] = args.scorer
    with contextlib.ExitStack() as stack:
        if mode == "distributed":
            values["SEGUE_DATABASE_URL"] = stack.enter_context(postgres_database())
            stack.callback(
                clean_redis, str(values["SEGUE_REDIS_NAMESPACE"]), str(values["SEGUE_RENDER_QUEUE"])
            )
        stack.enter_context(environment(values))
        from fastapi.testclient import TestClient

        from app.cli import migrate
        from app.main import create_app

        data.mkdir(parents=True, exist_ok=True)
        migrate()
        started: list[Worker] = []
        for n in range(workers):
            worker = start_worker(f"bench-{tag}-{n}", data / f"worker-{n}.log", threads)
            started.append(worker)
            stack.callback(stop_worker, worker)
        client = stack.enter_context(TestClient(create_app(), base_url="http://127.0.0.1"))
        yield Stack(client, started, mode, threads)


def create_transition(client: Any, args: argparse.Namespace, **overrides: Any) -> int:
    body = {
        "start_prompt": START_PROMPT,
        "end_prompt": END_PROMPT,
        "model": args.model,
        "frames": args.frames,
        "seed": args.seed,
        "steps": args.steps,
        "guidance_scale": args.guidance,
        "width": args.size,
        "height": args.size,
        "batch_size": args.app_batch,
        **overrides,
    }
    response = client.post("/api/transitions", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"creating the transition failed: {response.status_code} {response.text[:500]}")
    return int(response.json()["id"])


@dataclass
class Followed:
    render_id: int
    seconds: float
    final: str
    arrivals: list[tuple[float, float]]
    urls: dict[int, str]
    reused: int
    error: str = ""


def follow_render(stack: Stack, transition_id: int, timeout: float) -> Followed:
    """POST a render and read its SSE stream until its final event; every frame's arrival is timed."""
    client = stack.client
    started = time.perf_counter()
    response = client.post(f"/api/transitions/{transition_id}/renders")
    if response.status_code != 202:
        raise RuntimeError(f"starting the render failed: {response.status_code} {response.text[:500]}")
    render_id = int(response.json()["id"])
    finished = threading.Event()

    def watchdog() -> None:
        # A dead worker or a stuck render would keep the stream open forever: cancel it, which ends it.
        deadline = started + timeout
        while not finished.wait(1.0):
            dead = all(w.process.poll() is not None for w in stack.workers)
            if dead or time.perf_counter() > deadline:
                log(f"render {render_id}: {'every worker died' if dead else 'timed out'}; cancelling it")
                with contextlib.suppress(Exception):
                    client.post(f"/api/renders/{render_id}/cancel")
                return

    guard = threading.Thread(target=watchdog, daemon=True)
    guard.start()
    arrivals: list[tuple[float, float]] = []
    urls: dict[int, str] = {}
    reused = 0
    final, error = "", ""
    try:
        with client.stream("GET", f"/api/renders/{render_id}/events") as stream:
            for event in parse_sse(stream.iter_lines()):
                now = time.perf_counter() - started
                if event["event"] == "frame":
                    data = json.loads(event["data"])
                    arrivals.append((now, float(data["t"])))
                    urls[int(data["index"])] = data["url"]
                    reused += bool(data.get("reused"))
                elif event["event"] in TERMINAL_EVENTS:
                    final = event["event"]
                    error = json.loads(event.get("data") or "{}").get("error", "")
                    break
    finally:
        finished.set()
    return Followed(render_id, time.perf_counter() - started, final, arrivals, urls, reused, error)


def warm_up(stack: Stack, args: argparse.Namespace, batch: int) -> None:
    """A small render at the measured batch size (its own seed: nothing of it is reused later), so every
    worker has loaded the model, its scorers and the prompts' embeddings and run that batch shape before the
    measured render, as the raw engine has."""
    workers = len(stack.workers)
    for attempt in range(3):
        transition = create_transition(
            stack.client,
            args,
            frames=max(2, batch * (workers + 1)),
            steps=2,
            batch_size=batch,
            in_between="full",
            seed=args.seed + 1000 + attempt,
        )
        result = follow_render(stack, transition, timeout=600)
        if result.final != "done":
            tails = "\n".join(w.tail() for w in stack.workers)
            raise RuntimeError(f"the warm-up render ended {result.final!r} {result.error}\n{tails}")
        time.sleep(0.5)
        if all(w.handled() for w in stack.workers):
            return
    log("warning: not every worker took part in the warm-up; the first batch of one may include loading")


def app_render(
    args: argparse.Namespace,
    models_dir: Path,
    root: Path,
    mode: str,
    workers: int,
    threads: int,
    **settings: Any,
) -> tuple[Run, dict[int, Any]]:
    """Segue end to end: create the transition, POST a render, follow its events until done.

    `settings` override the transition's (batch_size, in_between, ...); by default it is the app's batch.
    """
    import PIL.Image

    batch = int(settings.get("batch_size", args.app_batch))
    with app_stack(args, models_dir, root, mode, workers, threads) as stack:
        warm_up(stack, args, batch)
        transition = create_transition(stack.client, args, **settings)
        before = [w.handled() for w in stack.workers]
        log(f"{mode}, {workers} worker(s) × {threads} thread(s): rendering")
        result = follow_render(stack, transition, timeout=args.timeout)
        if result.final != "done":
            tails = "\n".join(w.tail() for w in stack.workers)
            raise RuntimeError(f"the render ended {result.final!r} {result.error}\n{tails}")
        images = {}
        for index, url in result.urls.items():
            response = stack.client.get(url)
            if response.status_code == 200:
                images[index] = PIL.Image.open(io.BytesIO(response.content)).convert("RGB")
        time.sleep(0.5)  # a worker logs "succeeded" just after its last event
        shares = [w.handled() - n for w, n in zip(stack.workers, before, strict=True)]
    name = "Segue end to end, embedded" if mode == "embedded" else "Segue end to end, distributed"
    notes = [f"batches per worker {'/'.join(map(str, shares))}"] if workers > 1 else []
    if result.reused:
        notes.append(f"{result.reused} frames reused (should be 0)")
    run = Run(
        name,
        batch,
        args.frames,
        result.seconds,
        arrivals=result.arrivals,
        threads=f"{workers} worker{'s' if workers > 1 else ''} × {threads}",
        note="; ".join(notes),
    )
    first = run.first_frame or float("nan")
    log(f"{mode} × {workers}: {run.seconds:.1f} s, {run.fps:.2f} frames/s, first frame {first:.1f} s")
    return run, images
