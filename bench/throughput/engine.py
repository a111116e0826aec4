"""2. Segue's engine alone (Engine.render), in this process or in bare processes."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.cli import die_with_parent
from bench.throughput.common import (
    END_PROMPT,
    REPO,
    START_PROMPT,
    Run,
    chunks,
    frame_ts,
    log,
    pixel_settings,
)


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
            preexec_fn=die_with_parent,
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
