"""Where the wall time of one render goes, end to end through the worker's batch runner.

    python -m bench.profile [--model segue-mini] [--frames 24] [--steps 25] [--size 64] [--batch 3]
                            [--threads 1] [--out bench/results/profile.md]

The app in-process in a temporary data dir (embedded mode, SQLite, local frame store, events in the
database); POST a render through the API, catch the batches it queues, and run each through
worker.render.run_batch in this process, in the planned order, with every stage timed:
U-Net forwards and VAE decodes (forward hooks), text encoding, scheduler steps, latent previews and their
JPEG data URIs, scoring, PNG encoding, frame store writes, cancel checks (a database read each step),
claims, completions and other database work, event publishing. "other" is the rest of the wall time
(Python around the loop, interpolation, noise, post-processing). The model share is (U-Net + VAE) / wall.
--overlap runs the batches as a worker does (worker/finishing.py: scoring, storing and announcing on a
second stage beside the next batch's denoising); each stage's seconds are then counted in the thread that
ran them, and the second stage's are off the critical path (seconds may add up to more than the wall).
Without a viewer (no SSE stream here) previews are skipped, as in a worker (infra/watching.py).
Between batches a real worker also waits on its broker; this profile has no broker (bench/throughput
measures the real stack).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import show

PROMPTS = ("a futuristic cityscape, vibrant and detailed", "a cheerful girl in a magical forest")
STAGES = (
    "U-Net forwards",
    "VAE decode",
    "text encoding",
    "scheduler steps",
    "previews (latent projection)",
    "previews (JPEG data URIs)",
    "scoring",
    "PNG encode",
    "frame store writes",
    "cancel checks (database)",
    "claims, completions, render state (database)",
    "events",
)


class Profile:
    """Exclusive seconds per stage: time inside a nested stage counts for the inner one only; a U-Net or
    VAE forward inside another stage (the U-Net scorer's, in scoring) counts for that stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.second_stage: dict[str, float] = defaultdict(float)  # of those seconds, off the critical path
        self._local = threading.local()  # each thread its own stack: the second stage runs beside the render

    @property
    def _stack(self) -> list[list[Any]]:  # [stage, started, seconds of nested stages]
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack  # type: ignore[no-any-return]

    def _enter(self, stage: str) -> None:
        self._stack.append([stage, time.perf_counter(), 0.0])

    def _exit(self) -> None:
        stage, started, nested = self._stack.pop()
        elapsed = time.perf_counter() - started
        self.seconds[stage] += elapsed - nested
        self.calls[stage] += 1
        if threading.current_thread().name.startswith("segue-finish"):
            self.second_stage[stage] += elapsed - nested
        if self._stack:
            self._stack[-1][2] += elapsed

    def wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._enter(stage)
            try:
                return function(*args, **kwargs)
            finally:
                self._exit()

        return timed

    def hooks(self, stage: str, module: Any) -> list[Any]:
        inside: list[bool] = []

        def before(*_: Any) -> None:
            inside.append(not self._stack)
            if inside[-1]:
                self._enter(stage)

        def after(*_: Any) -> None:
            if inside.pop():
                self._exit()

        return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]


@contextlib.contextmanager
def patched(target: Any, name: str, replacement: Any) -> Iterator[None]:
    original = getattr(target, name)
    setattr(target, name, replacement)
    try:
        yield
    finally:
        setattr(target, name, original)


def profile_render(args: argparse.Namespace, data_dir: Path) -> tuple[Profile, float, int]:
    from fastapi.testclient import TestClient

    import worker.render as render_module
    from app.cli import migrate
    from app.main import create_app
    from engine.pipeline import SCHEDULERS, Engine, get_engine
    from infra import bus as bus_module
    from infra import storage
    from infra.config import get_settings
    from worker import lease
    from worker.finishing import wait_for_finishing

    os.environ.update(
        SEGUE_DATA_DIR=str(data_dir),
        SEGUE_MODE="embedded",
        SEGUE_EMBEDDED_WORKER="false",
        SEGUE_MODEL=args.model,
        SEGUE_WORKER_THREADS=str(args.threads),
        SEGUE_REAP_SECONDS="3600",  # no reaper re-queueing batches that wait in this process's list
    )
    get_settings.cache_clear()
    migrate()
    queued: list[tuple[int, list[int]]] = []
    profile = Profile()
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            patched(
                sys.modules["services.rendering"],
                "send_render_batch",
                lambda render_id, indices, priority=0: queued.append((render_id, list(indices))),
            )
        )
        client = stack.enter_context(TestClient(create_app(), base_url="http://127.0.0.1"))
        body = {
            "start_prompt": PROMPTS[0],
            "end_prompt": PROMPTS[1],
            "frames": args.frames,
            "steps": args.steps,
            "seed": 1,
            "width": args.size,
            "height": args.size,
            "batch_size": args.batch,
            "model": args.model,
        }

        def one_render(seed: int) -> float:
            created = client.post("/api/transitions", json={**body, "seed": seed})
            assert created.status_code == 201, created.text
            started = client.post(f"/api/transitions/{created.json()['id']}/renders")
            assert started.status_code == 202, started.text
            begin = time.perf_counter()
            while queued:  # batches queued while others run (a render may send them as it goes) run too
                render_id, indices = queued.pop(0)
                render_module.run_batch(render_id, indices, overlap=args.overlap)
            wait_for_finishing()  # the wall ends when the last frame is stored and announced
            return time.perf_counter() - begin

        engine = get_engine(args.model, models_dir=get_settings().models_dir, device="cpu")
        one_render(seed=99)  # warm-up: model load, caches; not profiled
        engine._embeddings.clear()
        bus = bus_module.get_bus()
        store = storage.get_store()
        for handle in [
            *profile.hooks("U-Net forwards", engine.pipe.unet),
            *profile.hooks("VAE decode", engine.pipe.vae.decoder),
        ]:
            stack.callback(handle.remove)
        wraps: list[tuple[Any, str, str]] = [
            (Engine, "_encode_one", "text encoding"),
            (Engine, "preview", "previews (latent projection)"),
            (render_module, "_data_uri", "previews (JPEG data URIs)"),
            (render_module, "score_frames", "scoring"),
            (render_module, "store_scores", "scoring"),
            (render_module, "png", "PNG encode"),
            (type(store), "write", "frame store writes"),  # get_store() may give a new instance per batch
            (render_module, "_is_cancelled", "cancel checks (database)"),
            (lease, "claim", "claims, completions, render state (database)"),
            (lease, "complete", "claims, completions, render state (database)"),
            (render_module, "finish_render", "claims, completions, render state (database)"),
            (render_module, "frame_requests", "claims, completions, render state (database)"),
            (bus, "publish", "events"),
        ]
        for target, name, stage in wraps:
            stack.enter_context(patched(target, name, profile.wrap(stage, getattr(target, name))))
        for scheduler in SCHEDULERS.values():
            stack.enter_context(patched(scheduler, "step", profile.wrap("scheduler steps", scheduler.step)))
        wall = one_render(seed=1)
        frames = args.frames
    return profile, wall, frames


def table(profile: Profile, wall: float, frames: int, args: argparse.Namespace) -> str:
    # The U-Net's own time includes nothing else; a preview's data URI includes no projection (separate).
    known = sum(profile.seconds[s] for s in STAGES)
    lines = [
        f"{args.model}, {frames} frames, {args.steps} steps, {args.size} x {args.size}, batch {args.batch}, "
        f"{args.threads} thread(s): one render through worker.render.run_batch"
        f"{' with overlap (second stage)' if args.overlap else ''}, {wall:.2f} s wall",
        "",
        "| stage | seconds | share of wall | calls | of which off the critical path |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for stage in STAGES:
        lines.append(
            f"| {stage} | {profile.seconds[stage]:.3f} | {profile.seconds[stage] / wall:.1%} | "
            f"{profile.calls[stage]} | {profile.second_stage[stage]:.3f} |"
        )
    # Seconds the second stage ran are not the render thread's: "other" is the rest of the render thread.
    rest = wall - (known - sum(profile.second_stage.values()))
    lines.append(f"| other (Python around the loop, noise, blending) | {rest:.3f} | {rest / wall:.1%} | | |")
    share = (profile.seconds["U-Net forwards"] + profile.seconds["VAE decode"]) / wall
    lines += ["", f"**model share** (U-Net + VAE) / wall: **{share:.1%}**"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="segue-mini")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--overlap", action="store_true", help="store and announce on a second stage (a worker)"
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="segue-profile-") as scratch:
        profile, wall, frames = profile_render(args, Path(scratch))
    text = table(profile, wall, frames, args)
    return show(text, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
