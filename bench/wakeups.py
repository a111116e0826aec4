"""How long a render waits on the embedded mode's polling, with its doorbell (infra/doorbell.py) and without.

    python -m bench.wakeups [--renders 12] [--threads 2]

Two stacks, one after the other, as `bench.throughput` builds them (the app in this process, a real
worker process, SQLite, the file broker): SEGUE_DOORBELL on, then off. Each renders the same small
transitions (6 frames, 4 steps, batch 3) one after the other and reads, per render:
- queue pick-up: from the render's creation to its first batch's start (the rows' created_at and
  started_at), the time its first batch waited in the queue folder for the worker to look;
- final event: from the render's end (finished_at) to its final event reaching this process's SSE
  stream, the time the event waited in the table for the stream to look.
Prints a Markdown table of the median and the largest of each, side by side.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Waits:
    """Seconds per render: queue pick-up and final event delivery."""

    label: str
    pick_up: list[float]
    final_event: list[float]


def measure(args: argparse.Namespace, root: Path, doorbell: bool) -> Waits:
    from bench.throughput.cli import parse_args
    from bench.throughput.end_to_end import app_stack, create_transition, environment, follow_render, warm_up
    from infra.config import get_settings
    from infra.db import new_session
    from infra.tables import Render

    bench_args = parse_args(["--frames", "6", "--steps", "4", "--app-batch", "3", "--model", args.model])
    pick_up: list[float] = []
    final_event: list[float] = []
    with environment({"SEGUE_DOORBELL": "true" if doorbell else "false"}):
        models_dir = get_settings().models_folder.resolve()
        with app_stack(bench_args, models_dir, root, "embedded", 1, args.threads) as stack:
            warm_up(stack, bench_args, 3)
            for n in range(args.renders):
                time.sleep(0.3)  # the worker idle, as between a person's clicks
                transition = create_transition(stack.client, bench_args, seed=bench_args.seed + n)
                followed = follow_render(stack, transition, timeout=600)
                if followed.final != "done":
                    raise RuntimeError(f"a render ended {followed.final!r}: {followed.error}")
                with new_session() as db:
                    render = db.get(Render, followed.render_id)
                    assert render is not None and render.started_at and render.finished_at
                    pick_up.append((render.started_at - render.created_at).total_seconds())
                    server = (render.finished_at - render.created_at).total_seconds()
                final_event.append(max(0.0, followed.seconds - server))
    return Waits(
        "doorbell (SEGUE_DOORBELL=true)" if doorbell else "polling only (SEGUE_DOORBELL=false)",
        pick_up,
        final_event,
    )


def table(results: Sequence[Waits]) -> str:
    """Median and largest wait of each kind, in milliseconds, one row per variant."""
    lines = [
        "| embedded mode | renders | queue pick-up, median (max) | final event to the stream, median (max) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in results:

        def ms(values: list[float]) -> str:
            return f"{1000 * statistics.median(values):.0f} ms ({1000 * max(values):.0f} ms)"

        lines.append(f"| {r.label} | {len(r.pick_up)} | {ms(r.pick_up)} | {ms(r.final_event)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wakeups", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="segue-mini")
    parser.add_argument("--renders", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the worker")
    args = parser.parse_args(argv)
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="segue-wakeups-") as tmp:
        results = [measure(args, Path(tmp), doorbell) for doorbell in (True, False)]
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
