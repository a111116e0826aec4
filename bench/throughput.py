"""Throughput in one run, on the same frames: a naive diffusers loop, Segue's engine, trajectory sharing,
Segue end to end through its API, and 2 workers against 1.

    python -m bench.throughput [--model segue-mini] [--frames 24] [--steps 25] [--size 64] [--seed 1]
                               [--batches 1 3 8] [--app-batch 3] [--threads 1] [--repeats 3] [--quick]
                               [--skip naive engine sharing app scaling] [--csv bench/results/throughput.csv]

Every part renders the founding transition ("a futuristic cityscape, vibrant and detailed" -> "a cheerful
girl in a magical forest", lerp of the text embeddings, one fixed noise latent from --seed, DPM-Solver++,
guidance 7.5):

1. naive loop: diffusers' StableDiffusionPipeline called once per frame, in index order, with
   prompt_embeds = the interpolated embedding, latents = the same noise, output_type="pil" (the way
   community scripts do it). The baseline for throughput, time to first frame and coverage.
2. Segue's engine (engine.pipeline.Engine.render) at each --batches size, coarse to fine (both ends, the
   middle, the quarters, ...), as the app orders them.
3. trajectory sharing (in_between "shared", k = shared_from_step, default half the steps) against full
   frames, through bench.methods' render / quality helpers: U-Net evaluations per in-between, smoothness
   (1 - Gini) and max jump of adjacent RMS pixel distances (core.metrics).
4. Segue end to end: the app in-process (fastapi TestClient) in embedded mode in a temp data dir, a real
   Celery worker subprocess; create the transition, POST a render, follow its SSE events until done.
   Wall time, frames/s, time to first frame, and the largest stretch of t still uncovered once 25 % of
   the frames have arrived.
5. distributed mode (Redis + PostgreSQL; a fresh database, Redis namespace and queue per run): the same
   render with 1 worker and with 2 workers, each pinned to one thread; beside it the machine's ceiling,
   1 and 2 bare engine processes (no app, broker or database) rendering the same frames at once.

Threads are pinned: this process runs torch on --threads threads (default 1) for parts 1-3 and sits idle
while the workers render; the embedded worker gets the same count (OMP_NUM_THREADS and
SEGUE_WORKER_THREADS), each distributed worker --scaling-threads (default 1). One thread by default because
on 2 cores shared with other work a 2-thread torch process stalls (up to 10x) whenever another process holds
a core; pass --threads 2 on a quiet machine. Every part runs --repeats times (default 3), interleaved, and
the median is reported with the min-max beside it. Prints Markdown tables, each figure beside its baseline
with the ratio, and whether each target of issue 11 is met; writes every figure as CSV to --csv. Seconds on a
shared machine are noisy: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import io
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
START_PROMPT = "a futuristic cityscape, vibrant and detailed"
END_PROMPT = "a cheerful girl in a magical forest"
TERMINAL_EVENTS = ("done", "failed", "cancelled")
PG_ADMIN_URL = os.environ.get("SEGUE_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SEGUE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
#: The share of frames after which the uncovered gap is measured (coarse-to-fine order shows there).
COVERAGE_FRACTION = 0.25

# Targets of issue 11, as measured by this script.
TARGET_END_TO_END = 3.0  # end to end >= 3x the naive loop's frames/s
TARGET_APP_SHARE = 0.90  # the app keeps >= 90 % of the raw engine's frames/s at the same batch
TARGET_SHARING_SAVING = 0.30  # >= 30 % fewer U-Net evaluations per in-between ...
TARGET_SCALING = 1.7  # 2 workers >= 1.7x one


# --------------------------------------------------------------------------------------------------------
# Pure helpers (tests/unit/test_throughput_bench.py)


def pixel_settings(args: argparse.Namespace) -> Any:
    """The picture settings every measurement of one run shares."""
    from core.params import PixelSettings

    return PixelSettings(
        model=args.model,
        seed=args.seed,
        steps=args.steps,
        guidance_scale=args.guidance,
        width=args.size,
        height=args.size,
    )


def frame_ts(frames: int) -> list[float]:
    """The t of each frame on a uniform grid over [0, 1] (one frame: t = 0)."""
    if frames <= 1:
        return [0.0] * max(frames, 0)
    return [i / (frames - 1) for i in range(frames)]


def coverage_count(total: int, fraction: float = COVERAGE_FRACTION) -> int:
    """How many frames make `fraction` of `total` (at least one)."""
    return max(1, math.ceil(fraction * total - 1e-9))


def uncovered_gap(ts: Sequence[float]) -> float:
    """The longest stretch of [0, 1] with no frame in it, given the frames' t (any order).

    The ends count: with frames only at 0.25 and 0.5, [0.5, 1] (0.5) is uncovered.
    """
    if not ts:
        return 1.0
    points = sorted(min(1.0, max(0.0, t)) for t in ts)
    edges = [0.0, *points, 1.0]
    return max(b - a for a, b in zip(edges, edges[1:], strict=False))


def gap_after(arrival_ts: Sequence[float], total: int, fraction: float = COVERAGE_FRACTION) -> float:
    """The largest uncovered gap in t once `fraction` of `total` frames have arrived (in arrival order)."""
    return uncovered_gap(list(arrival_ts)[: coverage_count(total, fraction)])


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline, or None when either is missing or the baseline is 0."""
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else "met" if ok else "not met"


def cell(value: Any) -> str:
    """A table cell: floats to 3 significant digits (whole numbers above 1000), None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value)


def times(value: float | None) -> str:
    """A ratio as '2.41×' (a dash when missing)."""
    return "—" if value is None else f"{value:.2f}×"


def percent(value: float | None) -> str:
    """A share as '89.7 %' (one decimal, so a figure just under a target never prints as the target)."""
    return "—" if value is None else f"{100 * value:.1f} %"


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A Markdown table of `rows` with (key, header) columns; a missing key is a dash."""
    lines = [
        "| " + " | ".join(header for _, header in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(key)) for key, _ in columns) + " |")
    return "\n".join(lines)


def parse_sse(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """Server-Sent Events from a stream's lines: {"event", "data", "id"} as each event completes."""
    current: dict[str, str] = {}
    for line in lines:
        if not line:
            if current.get("event") or current.get("data"):
                current.setdefault("event", "message")
                yield current
            current = {}
            continue
        if line.startswith(":"):  # a comment (the server's keep-alive ping)
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data" and "data" in current:
            current["data"] += "\n" + value
        else:
            current[name] = value
    if current.get("event") or current.get("data"):
        current.setdefault("event", "message")
        yield current


def sharing_costs(full_items: float, shared_items: float, frames: int, in_betweens: int) -> dict[str, float]:
    """U-Net evaluations per frame of a full render, per in-between of a shared one, and the saving.

    The anchors of a shared render cost what full frames cost, so what the shared render saves in total,
    spread over its in-betweens, is what each in-between saves.
    """
    per_frame = full_items / frames
    saved = (full_items - shared_items) / in_betweens if in_betweens else 0.0
    return {
        "per_frame_full": per_frame,
        "per_in_between_shared": per_frame - saved,
        "saved_share": saved / per_frame if per_frame else 0.0,
    }


def chunks(items: Sequence[int], size: int) -> list[list[int]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


# --------------------------------------------------------------------------------------------------------
# Measurements


@dataclass
class Run:
    """One render of the frames: when each frame arrived and what it cost."""

    method: str
    batch: int
    frames: int
    seconds: float
    arrivals: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, t)
    unet_items: float | None = None
    threads: str = ""
    images: dict[int, Any] = field(default_factory=dict, repr=False)
    note: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    @property
    def first_frame(self) -> float | None:
        return min(a for a, _ in self.arrivals) if self.arrivals else None

    @property
    def gap(self) -> float | None:
        if not self.arrivals:
            return None
        return gap_after([t for _, t in sorted(self.arrivals, key=lambda a: a[0])], self.frames)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (5 min {five:.2f})"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load()}] {message}", file=sys.stderr, flush=True)


def pixel_gap(a: Any, b: Any) -> float:
    """Mean absolute pixel difference of two images, 0..255."""
    import numpy as np

    x = np.asarray(a.convert("RGB"), dtype=np.float64)
    y = np.asarray(b.convert("RGB"), dtype=np.float64)
    return float(np.abs(x - y).mean())


def naive_loop(args: argparse.Namespace, models_dir: Path, device: Any, dtype: Any) -> Callable[[], Run]:
    """diffusers' pipeline once per frame, as community interpolation scripts call it.

    Loads the pipeline (not timed) and returns the timed loop over every frame, in index order.
    """
    import torch
    from diffusers import DPMSolverMultistepScheduler
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline

    from engine.interpolation import interpolate
    from engine.noise import seed_noise
    from engine.pipeline import resolve_model

    pipe = StableDiffusionPipeline.from_pretrained(
        resolve_model(args.model, models_dir),
        torch_dtype=dtype,
        safety_checker=None,
        requires_safety_checker=False,
    ).to(device)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    items = [0]

    def count(_module: Any, positional: tuple[Any, ...], keywords: dict[str, Any]) -> None:
        sample = positional[0] if positional else keywords["sample"]
        items[0] += int(sample.shape[0])

    pipe.unet.register_forward_pre_hook(count, with_kwargs=True)
    with torch.inference_mode():
        start_embedding = pipe.encode_prompt(START_PROMPT, device, 1, False)[0]
        end_embedding = pipe.encode_prompt(END_PROMPT, device, 1, False)[0]
    latent = args.size // pipe.vae_scale_factor
    noise = seed_noise(args.seed, (1, pipe.unet.config.in_channels, latent, latent))

    def frame(t: float, steps: int) -> Any:
        embedding = interpolate(start_embedding, end_embedding, t, "lerp")
        return pipe(
            prompt_embeds=embedding,
            latents=noise.clone().to(device),
            num_inference_steps=steps,
            guidance_scale=args.guidance,
            height=args.size,
            width=args.size,
            output_type="pil",
        ).images[0]

    frame(0.5, 2)  # warm-up: kernels and caches, as every part gets

    def run_once() -> Run:
        items[0] = 0
        ts = frame_ts(args.frames)
        run = Run(
            "naive diffusers loop", 1, args.frames, 0.0, threads=f"{torch.get_num_threads()} (this process)"
        )
        started = time.perf_counter()
        for index, t in enumerate(ts):
            run.images[index] = frame(t, args.steps)
            run.arrivals.append((time.perf_counter() - started, t))
        run.seconds = time.perf_counter() - started
        run.unet_items = items[0]
        log(f"naive loop: {run.seconds:.1f} s, {run.fps:.2f} frames/s")
        return run

    return run_once


def engine_runs(engine: Any, args: argparse.Namespace, batches: Sequence[int]) -> dict[int, Run]:
    """engine.render on every frame, coarse to fine, in batches of each size."""
    import torch

    from core.params import PixelSettings
    from core.timeline import render_order
    from engine.pipeline import FrameRequest

    params = pixel_settings(args)
    ts = frame_ts(args.frames)
    requests = [FrameRequest(START_PROMPT, END_PROMPT, t) for t in ts]
    order = render_order(args.frames)
    runs: dict[int, Run] = {}
    for batch in batches:
        warm = dict(params.model_dump(), steps=2)
        engine.render(PixelSettings(**warm), requests[:batch])  # warm-up at this batch shape
        run = Run(
            "Segue engine", batch, args.frames, 0.0, threads=f"{torch.get_num_threads()} (this process)"
        )
        items = 0
        started = time.perf_counter()
        for group in chunks(order, batch):
            images = engine.render(params, [requests[i] for i in group])
            items += engine.last_stats.unet_items
            now = time.perf_counter() - started
            for index, image in zip(group, images, strict=True):
                run.images[index] = image
                run.arrivals.append((now, ts[index]))
        run.seconds = time.perf_counter() - started
        run.unet_items = items
        runs[batch] = run
        log(f"engine batch {batch}: {run.seconds:.1f} s, {run.fps:.2f} frames/s")
    return runs


def engine_child(args: argparse.Namespace) -> None:
    """One bare engine process (--child-engine): load, warm up, say "ready", wait for "go" on stdin, render
    every frame at the app's batch, coarse to fine, and print the seconds as JSON."""
    import torch

    from core.params import PixelSettings
    from core.timeline import render_order
    from engine.pipeline import FrameRequest, get_engine

    torch.set_num_threads(args.scaling_threads)
    engine = get_engine(args.model, models_dir=args.models_dir, device=args.device)
    params = pixel_settings(args)
    requests = [FrameRequest(START_PROMPT, END_PROMPT, t) for t in frame_ts(args.frames)]
    engine.render(PixelSettings(**dict(params.model_dump(), steps=2)), requests[: args.app_batch])
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for group in chunks(render_order(args.frames), args.app_batch):
        engine.render(params, [requests[i] for i in group])
    print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)


def bare_engines(args: argparse.Namespace, models_dir: Path, processes: int) -> Run:
    """The machine's ceiling for N workers: N bare engine processes (no app, broker or database), each
    rendering every frame at the app's batch on --scaling-threads threads, started at the same moment."""
    threads = args.scaling_threads
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "bench.throughput", "--child-engine", "--models-dir", str(models_dir)]
    for flag in (
        "model",
        "frames",
        "steps",
        "size",
        "seed",
        "guidance",
        "app_batch",
        "scaling_threads",
        "device",
    ):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    children = [
        subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=_die_with_parent,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a bare engine process did not start (said {line!r})")
        started = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            assert child.stdout is not None
            json.loads(child.stdout.readline())
        seconds = time.perf_counter() - started
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()
    run = Run(
        "bare engine processes",
        args.app_batch,
        processes * args.frames,
        seconds,
        threads=f"{processes} process{'es' if processes > 1 else ''} × {threads}",
        note=f"{processes} × {args.frames} frames",
    )
    log(f"{processes} bare engine process(es): {seconds:.1f} s, {run.fps:.2f} frames/s")
    return run


def sharing_runs(engine: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Full against shared in-betweens on the same frames, through bench.methods (as a worker renders)."""
    import torch

    from bench import methods

    results: dict[str, Any] = {}
    for mode in ("full", "shared"):
        snapshot = methods.snapshot_for(
            (START_PROMPT, END_PROMPT),
            model=args.model,
            frames=args.frames,
            steps=args.steps,
            size=args.size,
            batch_size=args.app_batch,
            seeds=(args.seed, args.seed),
            guidance_scale=args.guidance,
            in_between=mode,
            shared_from_step=args.shared_from_step if mode == "shared" else None,
        )
        engine._latents.clear()  # every run pays for its own anchors (as bench.methods does)
        run = methods.render(engine, snapshot)
        results[mode] = {
            "run": run,
            "quality": methods.quality(run.images),
            "k": methods.shared_step(snapshot),
            "in_betweens": sum(1 for p in run.plans if p.start_step),
            "threads": f"{torch.get_num_threads()} (this process)",
        }
        log(f"sharing {mode}: {run.seconds:.1f} s, {run.unet_items} U-Net items")
    return results


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
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    reset_app_caches()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_app_caches()


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM if this script dies without stopping it (no orphans on a shared box)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


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
        command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
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


# --------------------------------------------------------------------------------------------------------
# Report


def median_run(runs: Sequence[Run]) -> Run:
    """The run with the median wall time (the lower middle one of an even count)."""
    if not runs:
        raise ValueError("no runs")
    ordered = sorted(runs, key=lambda r: r.seconds)
    return ordered[(len(ordered) - 1) // 2]


def spread(runs: Sequence[Run]) -> str:
    """'min–max' seconds of repeated runs ('' for one run)."""
    if len(runs) < 2:
        return ""
    seconds = [r.seconds for r in runs]
    return f"{min(seconds):.3g}–{max(seconds):.3g}"


@dataclass(frozen=True)
class Ratio:
    """A ratio measured in each round (value and baseline side by side in time): median, min and max."""

    median: float | None
    low: float | None = None
    high: float | None = None

    def __str__(self) -> str:
        return times(self.median)

    @property
    def range(self) -> str:
        if self.low is None or self.high is None or self.low == self.high:
            return ""
        return f"{self.low:.2f}–{self.high:.2f}×"


def paired_ratio(values: Sequence[float], baselines: Sequence[float]) -> Ratio:
    """values[i] / baselines[i] per round, summarised by the median (and min, max).

    On a machine whose load drifts, a ratio of two runs made one after the other in the same round is
    steadier than a ratio of medians taken across rounds. Rounds with a missing or zero figure are left
    out; with no complete round, the ratio of the medians.
    """
    ratios = [r for v, b in zip(values, baselines, strict=False) if (r := ratio(v, b)) is not None]
    ratios = [r for r in ratios if not math.isnan(r)]
    if not ratios or len(values) != len(baselines):
        if not values or not baselines:
            return Ratio(None)
        return Ratio(ratio(statistics.median(values), statistics.median(baselines)))
    return Ratio(statistics.median(ratios), min(ratios), max(ratios))


def fps_of(runs: Sequence[Run]) -> list[float]:
    return [r.fps for r in runs]


def fast_label(args: argparse.Namespace) -> str:
    return f"Segue end to end, embedded, batch {args.fast_batch} + shared in-betweens"


def throughput_row(label: str, runs: Sequence[Run], baseline: Sequence[Run]) -> dict[str, Any]:
    run = median_run(runs)
    versus = paired_ratio(fps_of(runs), fps_of(baseline))
    return {
        "section": "throughput",
        "method": label,
        "batch": run.batch,
        "threads": run.threads,
        "frames": run.frames,
        "runs": len(runs),
        "seconds": run.seconds,
        "seconds_range": spread(runs),
        "frames_per_s": run.fps,
        "vs_naive": versus.median,
        "vs_naive_range": versus.range,
        "first_frame_s": run.first_frame,
        "gap_after_25": run.gap,
        "unet_items": run.unet_items,
        "note": run.note,
    }


def report(
    args: argparse.Namespace,
    naive: list[Run],
    engine: dict[int, list[Run]],
    sharing: list[dict[str, Any]],
    app: list[Run],
    app_fast: list[Run],
    scaling: dict[int, list[Run]],
    same_frames: dict[str, float],
    pinned: list[str],
    loads: list[str],
    skipped: dict[str, str],
    ceiling: dict[int, list[Run]] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The Markdown report and the CSV rows: every figure beside its baseline, medians of the repeats."""
    out: list[str] = []
    csv_rows: list[dict[str, Any]] = []
    base = median_run(naive) if naive else None
    counts = [len(naive), len(app), len(app_fast), len(sharing), *(len(v) for v in engine.values())]
    repeats = max([*counts, *(len(v) for v in scaling.values()), 1])
    out.append(
        f"{args.model}, {args.frames} frames, {args.steps} steps, {args.size}×{args.size}, seed {args.seed}, "
        f'DPM-Solver++, guidance {args.guidance:g}, lerp: "{START_PROMPT}" → "{END_PROMPT}". '
        + (
            f"Every part ran {repeats} times, interleaved (round 1: every part once, then round 2, ...): "
            "seconds are the median (min–max beside); a ratio is the median of the ratios within each round "
            "(the range of those beside), since the load drifts between rounds."
            if repeats > 1
            else "One run of each part."
        )
    )
    out.append(
        f"Machine: {os.cpu_count()} CPU cores, shared with other work; {datetime.date.today().isoformat()}; "
        f"load average (1 min) {' → '.join(loads)} during the run."
    )
    out.append("Pinned: " + "; ".join(pinned) + ".")
    if same_frames:
        out.append(
            "Same frames (largest mean absolute pixel difference of a frame, 0–255): "
            + "; ".join(f"{name} {value:.2f}" for name, value in same_frames.items())
            + "."
        )
    for part, why in skipped.items():
        out.append(f"Skipped {part}: {why}.")

    # 1. Throughput against the naive loop
    rows: list[dict[str, Any]] = []
    if naive:
        rows.append(throughput_row("naive diffusers loop (baseline)", naive, naive))
    for batch in sorted(engine):
        rows.append(throughput_row("Segue engine", engine[batch], naive))
    if sharing:
        k = sharing[0]["shared"]["k"]
        shared_runs = [
            Run(
                f"Segue engine, shared in-betweens (k = {k})",
                args.app_batch,
                len(r["shared"]["run"].ts),
                r["shared"]["run"].seconds,
                unet_items=r["shared"]["run"].unet_items,
                threads=r["shared"]["threads"],
            )
            for r in sharing
        ]
        rows.append(throughput_row(shared_runs[0].method, shared_runs, naive))
    if app:
        rows.append(throughput_row("Segue end to end (API + worker), embedded", app, naive))
    if app_fast:
        rows.append(throughput_row(fast_label(args), app_fast, naive))
    for workers in sorted(scaling):
        label = f"Segue end to end, distributed, {workers} worker{'s' if workers > 1 else ''}"
        rows.append(throughput_row(label, scaling[workers], naive))
    if rows:
        out.append("\n#### Throughput against the naive loop\n")
        out.append(
            markdown_table(
                [dict(r, vs_naive=times(r["vs_naive"])) for r in rows],
                [
                    ("method", "method"),
                    ("batch", "batch"),
                    ("threads", "torch threads"),
                    ("seconds", "seconds"),
                    ("seconds_range", "min–max"),
                    ("frames_per_s", "frames/s"),
                    ("vs_naive", "vs naive loop"),
                    ("vs_naive_range", "range over rounds"),
                    ("unet_items", "U-Net evaluations"),
                ],
            )
        )
        csv_rows += rows

    # 2. The app against the raw engine at the same batch
    raw = median_run(engine[args.app_batch]) if engine.get(args.app_batch) else None
    app_run = median_run(app) if app else None
    app_versus = paired_ratio(fps_of(app), fps_of(engine.get(args.app_batch, [])))
    app_share = app_versus.median
    if app_run:
        out.append("\n#### The app against the raw engine (same frames, batch, threads)\n")
        row = {
            "what": f"batch {args.app_batch}",
            "app_s": app_run.seconds,
            "app": app_run.fps,
            "engine_s": raw.seconds if raw else None,
            "engine": raw.fps if raw else None,
            "share": percent(app_share),
            "range": (
                f"{100 * app_versus.low:.1f}–{100 * app_versus.high:.1f} %"
                if app_versus.low is not None and app_versus.high is not None and app_versus.range
                else ""
            ),
        }
        out.append(
            markdown_table(
                [row],
                [
                    ("what", ""),
                    ("engine_s", "raw engine seconds (baseline)"),
                    ("engine", "raw engine frames/s"),
                    ("app_s", "app seconds"),
                    ("app", "app frames/s"),
                    ("share", "app / raw engine"),
                    ("range", "range over rounds"),
                ],
            )
        )
        csv_rows.append(
            {
                "section": "app_vs_engine",
                "method": row["what"],
                "frames_per_s": row["app"],
                "baseline_frames_per_s": row["engine"],
                "ratio": app_share,
            }
        )

    # 3. Coarse to fine: the first frame and how much of t is covered after 25 % of the frames
    progressive: list[tuple[str, Run]] = []
    if base:
        progressive.append(("naive diffusers loop, index order (baseline)", base))
    if raw:
        progressive.append((f"Segue engine, batch {args.app_batch}, coarse to fine", raw))
    if app_run:
        progressive.append(("Segue end to end, embedded", app_run))
    if app_fast:
        progressive.append((fast_label(args), median_run(app_fast)))
    for workers in sorted(scaling):
        label = f"Segue end to end, distributed, {workers} worker{'s' if workers > 1 else ''}"
        progressive.append((label, median_run(scaling[workers])))
    if progressive:
        count = coverage_count(args.frames)
        out.append(
            f"\n#### First frame, and t still uncovered after 25 % of the frames ({count} of {args.frames})\n"
        )
        prog_rows = []
        for label, r in progressive:
            is_base = r is base
            prog_rows.append(
                {
                    "method": label,
                    "first": r.first_frame,
                    "first_vs": "—" if is_base or not base else times(ratio(r.first_frame, base.first_frame)),
                    "gap": r.gap,
                    "gap_vs": "—" if is_base or not base else times(ratio(r.gap, base.gap)),
                }
            )
            csv_rows.append(
                {
                    "section": "progressive",
                    "method": label,
                    "batch": r.batch,
                    "first_frame_s": r.first_frame,
                    "gap_after_25": r.gap,
                }
            )
        out.append(
            markdown_table(
                prog_rows,
                [
                    ("method", "method"),
                    ("first", "first frame (s)"),
                    ("first_vs", "vs naive (lower is better)"),
                    ("gap", "largest uncovered gap in t"),
                    ("gap_vs", "vs naive (lower is better)"),
                ],
            )
        )

    # 4. Trajectory sharing
    sharing_ok, sharing_detail = None, "—"
    if sharing:
        first = sharing[0]
        full, shared = first["full"], first["shared"]
        full_runs = [r["full"]["run"] for r in sharing]
        shared_runs_ = [r["shared"]["run"] for r in sharing]
        full_s = statistics.median(r.seconds for r in full_runs)
        shared_s = statistics.median(r.seconds for r in shared_runs_)
        speed = paired_ratio([r.seconds for r in full_runs], [r.seconds for r in shared_runs_])
        costs = sharing_costs(
            full["run"].unet_items, shared["run"].unet_items, len(full["run"].ts), shared["in_betweens"]
        )
        fq, sq = full["quality"], shared["quality"]
        smooth_ok = round(sq["smoothness"], 3) >= round(fq["smoothness"], 3)
        sharing_ok = costs["saved_share"] >= TARGET_SHARING_SAVING and smooth_ok
        sharing_detail = (
            f"{percent(costs['saved_share'])} fewer per in-between; smoothness {fq['smoothness']:.3f} → "
            f"{sq['smoothness']:.3f} (max jump {fq['max_jump']:.3f} → {sq['max_jump']:.3f})"
        )
        out.append(
            f"\n#### Trajectory sharing against full frames (batch {args.app_batch}, "
            f"k = {shared['k']} of {args.steps} steps, through bench.methods)\n"
        )
        share_rows = [
            {
                "mode": "full (baseline)",
                "items": full["run"].unet_items,
                "per": costs["per_frame_full"],
                "vs": "1.00×",
                "smooth": fq["smoothness"],
                "jump": fq["max_jump"],
                "seconds": full_s,
                "speed": "1.00×",
            },
            {
                "mode": f"shared, k = {shared['k']} ({shared['in_betweens']} in-betweens)",
                "items": shared["run"].unet_items,
                "per": costs["per_in_between_shared"],
                "vs": times(1 - costs["saved_share"]),
                "smooth": sq["smoothness"],
                "jump": sq["max_jump"],
                "seconds": shared_s,
                "speed": f"{speed} ({speed.range})" if speed.range else str(speed),
            },
        ]
        out.append(
            markdown_table(
                share_rows,
                [
                    ("mode", "in-betweens"),
                    ("items", "U-Net evaluations (render)"),
                    ("per", "per in-between (full: per frame)"),
                    ("vs", "vs full"),
                    ("smooth", "smoothness (1 − Gini)"),
                    ("jump", "max jump"),
                    ("seconds", "seconds"),
                    ("speed", "speed-up"),
                ],
            )
        )
        for row in share_rows:
            csv_rows.append(
                {
                    "section": "sharing",
                    "method": row["mode"],
                    "unet_items": row["items"],
                    "unet_per_in_between": row["per"],
                    "smoothness": row["smooth"],
                    "max_jump": row["jump"],
                    "seconds": row["seconds"],
                }
            )

    # 5. Workers
    scaling_ratio = ceiling_ratio = None
    if scaling:
        out.append(f"\n#### Distributed: 2 workers against 1 ({args.scaling_threads} torch thread each)\n")
        scale_rows = []
        for workers in sorted(scaling):
            r = median_run(scaling[workers])
            versus = paired_ratio(fps_of(scaling[workers]), fps_of(scaling.get(1, [])))
            scale_rows.append(
                {
                    "workers": f"{workers}" + (" (baseline)" if workers == 1 else ""),
                    "seconds": r.seconds,
                    "range": spread(scaling[workers]),
                    "fps": r.fps,
                    "vs": str(versus),
                    "vs_range": versus.range,
                    "note": r.note,
                }
            )
        for processes in sorted(ceiling or {}):
            assert ceiling is not None
            r = median_run(ceiling[processes])
            versus = paired_ratio(fps_of(ceiling[processes]), fps_of(ceiling.get(1, [])))
            scale_rows.append(
                {
                    "workers": f"ceiling: {processes} bare engine process{'es' if processes > 1 else ''}",
                    "seconds": r.seconds,
                    "range": spread(ceiling[processes]),
                    "fps": r.fps,
                    "vs": str(versus),
                    "vs_range": versus.range,
                    "note": r.note + (" at once" if processes > 1 else ""),
                }
            )
            csv_rows.append(
                {
                    "section": "scaling_ceiling",
                    "method": f"{processes} bare engine processes",
                    "seconds": r.seconds,
                    "frames_per_s": r.fps,
                    "ratio": versus.median,
                }
            )
        if scaling.get(1) and scaling.get(2):
            scaling_ratio = paired_ratio(fps_of(scaling[2]), fps_of(scaling[1])).median
        if ceiling and ceiling.get(1) and ceiling.get(2):
            ceiling_ratio = paired_ratio(fps_of(ceiling[2]), fps_of(ceiling[1])).median
        out.append(
            markdown_table(
                scale_rows,
                [
                    ("workers", "workers"),
                    ("seconds", "seconds"),
                    ("range", "min–max"),
                    ("fps", "frames/s"),
                    ("vs", "vs 1 worker"),
                    ("vs_range", "range over rounds"),
                    ("note", ""),
                ],
            )
        )
        csv_rows.append({"section": "scaling", "method": "2 workers vs 1", "ratio": scaling_ratio})

    # Targets (issue 11)
    end_to_end = paired_ratio(fps_of(app), fps_of(naive)).median if app and naive else None
    fast_end_to_end = paired_ratio(fps_of(app_fast), fps_of(naive)).median if app_fast and naive else None
    e2e_measured = f"{times(end_to_end)} at the app's defaults (batch {args.app_batch}, full frames)"
    e2e_result = verdict(None if end_to_end is None else end_to_end >= TARGET_END_TO_END)
    if fast_end_to_end is not None:
        e2e_measured += f"; {times(fast_end_to_end)} at batch {args.fast_batch} + shared in-betweens"
        if e2e_result != "met":
            fast_ok = fast_end_to_end >= TARGET_END_TO_END
            e2e_result += f" ({'but met' if fast_ok else 'nor'} at batch {args.fast_batch} + shared)"
    targets = [
        {
            "target": f"end to end (embedded) ≥ {TARGET_END_TO_END:g}× the naive loop",
            "measured": e2e_measured,
            "result": e2e_result,
        },
        {
            "target": f"the app keeps ≥ {TARGET_APP_SHARE * 100:.0f} % of the raw engine's throughput "
            f"(batch {args.app_batch})",
            "measured": percent(app_share),
            "result": verdict(None if app_share is None else app_share >= TARGET_APP_SHARE),
        },
        {
            "target": f"sharing saves ≥ {TARGET_SHARING_SAVING * 100:.0f} % of U-Net evaluations per "
            "in-between at equal or better smoothness",
            "measured": sharing_detail,
            "result": verdict(sharing_ok),
        },
        {
            "target": f"2 workers ≥ {TARGET_SCALING:g}× one",
            "measured": times(scaling_ratio)
            + (
                f" (the machine's ceiling, same rounds: 2 bare engine processes {times(ceiling_ratio)} one)"
                if ceiling_ratio is not None
                else ""
            ),
            "result": verdict(None if scaling_ratio is None else scaling_ratio >= TARGET_SCALING),
        },
    ]
    out.append("\n#### Targets\n")
    out.append(markdown_table(targets, [("target", "target"), ("measured", "measured"), ("result", "")]))
    for t in targets:
        csv_rows.append(
            {"section": "target", "method": t["target"], "note": f"{t['measured']}: {t['result']}"}
        )
    return "\n".join(out), csv_rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="segue-mini")
    parser.add_argument("--frames", type=int, default=None, help="default 24 (--quick: 8)")
    parser.add_argument("--steps", type=int, default=None, help="default 25 (--quick: 8)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 3, 8], help="raw engine batch sizes")
    parser.add_argument(
        "--app-batch", type=int, default=3, help="the transition's batch_size (the app's default)"
    )
    parser.add_argument("--shared-from-step", type=int, default=None, help="k; default half the steps")
    parser.add_argument(
        "--fast-batch",
        type=int,
        default=None,
        help="batch of the second end-to-end render, with shared in-betweens (default: largest --batches)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of this process and of the embedded worker (default 1: on 2 cores shared with "
        "other work, 2-thread torch stalls whenever another process holds a core)",
    )
    parser.add_argument("--scaling-threads", type=int, default=1, help="torch threads per distributed worker")
    parser.add_argument(
        "--repeats", type=int, default=None, help="interleaved runs of every part (default 3, --quick 1)"
    )
    parser.add_argument(
        "--scorer", default=None, help="SEGUE_SCORER for the workers (default: the app's own)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--skip",
        nargs="+",
        default=[],
        choices=["naive", "engine", "sharing", "app", "fast", "scaling"],
        help="parts to leave out",
    )
    parser.add_argument("--quick", action="store_true", help="8 frames, 8 steps, one run of each part")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one app render may take")
    parser.add_argument("--csv", type=Path, default=Path("bench/results/throughput.csv"))
    parser.add_argument("--child-engine", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--models-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.frames = args.frames or (8 if args.quick else 24)
    args.steps = args.steps or (8 if args.quick else 25)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.fast_batch = args.fast_batch or max(args.batches)
    if args.app_batch not in args.batches and "engine" not in args.skip:
        args.batches = sorted({*args.batches, args.app_batch})
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child_engine:
        engine_child(args)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from engine.pipeline import get_engine
    from infra.config import get_settings

    models_dir = (get_settings().models_dir or Path("data/models")).resolve()
    loads = [f"{os.getloadavg()[0]:.2f}"]
    pinned = [
        f"this process torch.set_num_threads({args.threads}), OMP_NUM_THREADS={args.threads} (naive loop, "
        "raw engine, sharing; idle while the workers render)"
    ]
    if "app" not in args.skip or "fast" not in args.skip:
        pinned.append(
            f"the embedded worker OMP_NUM_THREADS={args.threads}, SEGUE_WORKER_THREADS={args.threads}"
        )
    if "scaling" not in args.skip:
        n = args.scaling_threads
        pinned.append(f"each distributed worker OMP_NUM_THREADS={n}, SEGUE_WORKER_THREADS={n}")
    skipped: dict[str, str] = {}
    log(
        f"{args.model}, {args.frames} frames, {args.steps} steps, {args.size}px, {args.repeats} repeats, "
        f"torch threads {torch.get_num_threads()}"
    )
    engine = get_engine(args.model, models_dir=models_dir, device=args.device)
    naive_once = (
        naive_loop(args, models_dir, engine.device, engine.dtype) if "naive" not in args.skip else None
    )

    naive: list[Run] = []
    engine_results: dict[int, list[Run]] = {}
    sharing: list[dict[str, Any]] = []
    app: list[Run] = []
    app_fast: list[Run] = []
    scaling: dict[int, list[Run]] = {}
    ceiling: dict[int, list[Run]] = {}
    same_frames: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="segue-bench-") as tmp:
        root = Path(tmp)
        for repeat in range(args.repeats):
            log(f"round {repeat + 1} of {args.repeats}")
            if naive_once:
                naive.append(naive_once())
            if "engine" not in args.skip:
                for batch, run in engine_runs(engine, args, args.batches).items():
                    engine_results.setdefault(batch, []).append(run)
            if "sharing" not in args.skip:
                sharing.append(sharing_runs(engine, args))
            if "app" not in args.skip:
                run, images = app_render(args, models_dir, root, "embedded", 1, args.threads)
                app.append(run)
                reference = engine_results.get(args.app_batch)
                if reference and images and repeat == 0:
                    gaps = [pixel_gap(images[i], reference[0].images[i]) for i in images]
                    same_frames["app vs raw engine"] = max(gaps)
            if "fast" not in args.skip:
                fast: dict[str, Any] = {"batch_size": args.fast_batch, "in_between": "shared"}
                if args.shared_from_step:
                    fast["shared_from_step"] = args.shared_from_step
                run, _ = app_render(args, models_dir, root, "embedded", 1, args.threads, **fast)
                app_fast.append(run)
            if "scaling" not in args.skip and "2 workers vs 1" not in skipped:
                for processes in (1, 2) if repeat % 2 == 0 else (2, 1):
                    ceiling.setdefault(processes, []).append(bare_engines(args, models_dir, processes))
                try:
                    for workers in (1, 2) if repeat % 2 == 0 else (2, 1):
                        run, _ = app_render(
                            args, models_dir, root, "distributed", workers, args.scaling_threads
                        )
                        scaling.setdefault(workers, []).append(run)
                except Exception as exc:  # Redis or PostgreSQL away: say so, keep the rest
                    skipped["2 workers vs 1"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    log(f"the distributed part failed: {exc}")
            if repeat == 0 and naive and engine_results:
                some = engine_results[min(engine_results)][0]
                same_frames = {
                    "naive loop vs raw engine": max(
                        pixel_gap(naive[0].images[i], some.images[i]) for i in some.images
                    ),
                    **same_frames,
                }
            loads.append(f"{os.getloadavg()[0]:.2f}")

    text, rows = report(
        args,
        naive,
        engine_results,
        sharing,
        app,
        app_fast,
        scaling,
        same_frames,
        pinned,
        loads,
        skipped,
        ceiling=ceiling,
    )
    print(text)
    write_csv(args.csv, rows)
    print(f"\nwritten {args.csv}")


if __name__ == "__main__":
    main()
