"""`python -m bench.throughput`: the flags and the order of the measurements."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.throughput.common import Run, log, pixel_gap
from bench.throughput.end_to_end import app_render
from bench.throughput.engine import bare_engines, engine_child, engine_runs
from bench.throughput.naive import naive_loop
from bench.throughput.report import report, speed_report, write_csv
from bench.throughput.savings import savings_runs
from bench.throughput.sdv import Missing, sdv_run
from bench.throughput.sharing import sharing_runs


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput",
        description=sys.modules["bench.throughput"].__doc__,  # the package's: what each part measures
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        "--fast-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the second end-to-end render (repeatable), e.g. deep_cache_interval=2",
    )
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
        choices=["naive", "engine", "sharing", "app", "app-batch8", "fast", "scaling", "savings", "sdv"],
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
    if "engine" not in args.skip:  # the app and the savings are measured against these
        args.batches = sorted({*args.batches, args.app_batch, args.fast_batch})
    return args


def fast_settings(args: argparse.Namespace) -> dict[str, Any]:
    """--fast-setting NAME=VALUE pairs, each value read as JSON where it can be (numbers, true, null)."""
    settings: dict[str, Any] = {}
    for pair in args.fast_setting:
        name, _, value = pair.partition("=")
        try:
            settings[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            settings[name.strip()] = value
    return settings


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

    models_dir = get_settings().models_folder.resolve()
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
    app_at_fast_batch: list[Run] = []  # full compute, at the fast batch (issue 20: the app at batch 8)
    # The engine at an app render's batch, measured again right after it: the app's baseline in its round
    # is the mean of the engine just before and just after it (the machine's speed drifts within a round).
    bracket: dict[int, list[Run]] = {}

    def bracket_app(batch: int, repeat: int) -> None:
        before = engine_results.get(batch)
        if "engine" in args.skip or not before or len(before) <= repeat:
            return
        after = engine_runs(engine, args, [batch])[batch]
        seconds = (before[repeat].seconds + after.seconds) / 2
        bracket.setdefault(batch, []).append(
            Run(before[repeat].method, batch, before[repeat].frames, seconds)
        )

    savings: dict[str, list[Run]] = {}
    sdv: dict[int, list[Run]] = {}
    sdv_missing: str | None = None
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
                bracket_app(args.app_batch, repeat)
                reference = engine_results.get(args.app_batch)
                if reference and images and repeat == 0:
                    gaps = [pixel_gap(images[i], reference[0].images[i]) for i in images]
                    same_frames["app vs raw engine"] = max(gaps)
            if "fast" not in args.skip:
                fast: dict[str, Any] = {"batch_size": args.fast_batch, "in_between": "shared"}
                if args.shared_from_step:
                    fast["shared_from_step"] = args.shared_from_step
                fast.update(fast_settings(args))
                run, run.images = app_render(args, models_dir, root, "embedded", 1, args.threads, **fast)
                app_fast.append(run)
            if "app-batch8" not in args.skip and args.fast_batch != args.app_batch:
                batch_only = {"batch_size": args.fast_batch}
                run, _ = app_render(args, models_dir, root, "embedded", 1, args.threads, **batch_only)
                app_at_fast_batch.append(run)
                bracket_app(args.fast_batch, repeat)
            if "savings" not in args.skip:
                for run in savings_runs(engine, args, args.fast_batch):
                    savings.setdefault(run.method, []).append(run)
            if "sdv" not in args.skip and sdv_missing is None:
                try:
                    for batch in dict.fromkeys([args.app_batch, args.fast_batch]):
                        sdv.setdefault(batch, []).append(sdv_run(engine, args, batch))
                except Missing as exc:
                    sdv_missing = str(exc)
                    log(sdv_missing)
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
        bracket=bracket,
    )
    app_by_batch = {args.app_batch: app} if app else {}
    if app_at_fast_batch:
        app_by_batch[args.fast_batch] = app_at_fast_batch
    speed_text, speed_rows = speed_report(
        args, naive, engine_results, app_by_batch, app_fast, savings, sdv, sdv_missing, bracket
    )
    text += "\n" + speed_text
    rows += speed_rows
    print(text)
    write_csv(args.csv, rows)
    print(f"\nwritten {args.csv}")
