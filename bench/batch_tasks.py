"""Where the app's share of its engine goes: the worker's batch tasks, with the render followed and without.

    python -m bench.batch_tasks [--rounds 3] [--frames 24] [--steps 25] [--batch 8] [--threads 2]

One stack as `bench.throughput` builds it (the app in this process, one real embedded worker process,
SQLite, the file broker), warmed up at the batch size. Each round measures, one after the other, on the same
frames but for the seed (a new seed each render, so nothing is reused):
- the engine: `Engine.render` in this process, as `bench.throughput`'s engine rows do;
- a render followed over SSE, as the browser does (the worker then also sends latent previews);
- a render nobody follows, its status read every 0.5 s.
For both renders it reads the seconds of each of the worker's batch tasks from the worker's log (Celery's own
"Task ... succeeded in N s" line), so the time the worker spends is told apart from the time around it (the
POST, planning, the queue, the last event reaching this process).
Prints a Markdown table, one row per round. Threads are pinned as in `bench.throughput` (this process and
the worker each --threads torch threads; this process is idle while the worker renders).
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import show

TASK_DONE = re.compile(r"segue\.render_batch\[[^\]]+\] succeeded in ([0-9.]+)s")


@dataclass(frozen=True)
class Round:
    engine: float
    followed: float
    followed_tasks: list[float]
    unfollowed: float
    unfollowed_tasks: list[float]


def task_seconds(log: Path) -> list[float]:
    """Every finished batch task's seconds in the worker's log, in order."""
    return [float(m.group(1)) for m in TASK_DONE.finditer(log.read_text(errors="replace"))]


def measure(args: argparse.Namespace, root: Path) -> list[Round]:
    from bench.throughput.cli import parse_args
    from bench.throughput.end_to_end import app_stack, create_transition, follow_render, warm_up
    from bench.throughput.engine import engine_runs
    from engine.pipeline import get_engine
    from infra.config import get_settings

    bench_args = parse_args(
        ["--model", args.model, "--frames", str(args.frames), "--steps", str(args.steps)]
        + ["--batches", str(args.batch), "--app-batch", str(args.batch), "--threads", str(args.threads)]
    )
    models_dir = get_settings().models_folder.resolve()
    engine = get_engine(args.model, models_dir=models_dir, device=bench_args.device)
    rounds: list[Round] = []
    with app_stack(bench_args, models_dir, root, "embedded", 1, args.threads) as stack:
        warm_up(stack, bench_args, args.batch)
        log = stack.workers[0].log
        seed = bench_args.seed + 100
        for _ in range(args.rounds):
            engine_seconds = engine_runs(engine, bench_args, [args.batch])[args.batch].seconds

            seed += 1
            done_before = len(task_seconds(log))
            transition = create_transition(stack.client, bench_args, batch_size=args.batch, seed=seed)
            followed = follow_render(stack, transition, timeout=600)
            if followed.final != "done":
                raise RuntimeError(f"a followed render ended {followed.final!r}: {followed.error}")
            followed_tasks = task_seconds(log)[done_before:]

            seed += 1
            done_before = len(task_seconds(log))
            transition = create_transition(stack.client, bench_args, batch_size=args.batch, seed=seed)
            started = time.perf_counter()
            response = stack.client.post(f"/api/transitions/{transition}/renders")
            if response.status_code != 202:
                raise RuntimeError(f"starting a render failed: {response.status_code} {response.text[:300]}")
            render_id = response.json()["id"]
            while (status := stack.client.get(f"/api/renders/{render_id}").json()["status"]) not in (
                "done",
                "failed",
                "cancelled",
            ):
                time.sleep(0.5)
            if status != "done":
                raise RuntimeError(f"an unfollowed render ended {status!r}")
            unfollowed = time.perf_counter() - started
            rounds.append(
                Round(
                    engine_seconds,
                    followed.seconds,
                    followed_tasks,
                    unfollowed,
                    task_seconds(log)[done_before:],
                )
            )
    return rounds


def table(rounds: Sequence[Round], args: argparse.Namespace) -> str:
    def tasks(values: list[float]) -> str:
        return " + ".join(f"{v:.2f}" for v in values) + f" = {sum(values):.2f} s"

    lines = [
        f"{args.model}, {args.frames} frames, {args.steps} steps, batch {args.batch}, "
        f"{args.threads} thread(s)",
        "",
        "| round | engine | render followed over SSE | its batch tasks "
        "| render nobody follows (read every 0.5 s) | its batch tasks | engine / tasks, followed / not |",
        "| ---: | ---: | ---: | --- | ---: | --- | ---: |",
    ]
    for n, r in enumerate(rounds, 1):
        share = f"{r.engine / sum(r.followed_tasks):.1%} / {r.engine / sum(r.unfollowed_tasks):.1%}"
        lines.append(
            f"| {n} | {r.engine:.2f} s | {r.followed:.2f} s | {tasks(r.followed_tasks)} | "
            f"{r.unfollowed:.2f} s | {tasks(r.unfollowed_tasks)} | {share} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_tasks", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="segue-mini")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of this process and the worker")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="segue-batch-tasks-") as tmp:
        rounds = measure(args, Path(tmp))
    return show(table(rounds, args), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
