"""3. Trajectory sharing against full frames: U-Net evaluations, smoothness."""

from __future__ import annotations

import argparse
from typing import Any

from bench.throughput.common import END_PROMPT, START_PROMPT, log


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
