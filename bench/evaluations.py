"""Fewer U-Net evaluations for the same pictures: each saving against full compute on the same frames.

    python -m bench.evaluations [--model segue-mini] [--frames 24] [--steps 25] [--size 64] [--batch 8]
                                [--threads 1] [--repeats 3] [--out bench/results/evaluations.md]

Renders the founding transition once with full compute, then with each setting of Engine.render's savings
(guidance only on the first part of the steps: `guidance_until`; DeepCache: `deep_cache_interval`; shared
in-betweens: `in_between` "shared" from step k = steps // 2; neighbour reuse on those in-betweens:
`neighbour_reuse_from`) and their combinations, batch by batch as a worker renders them (bench.methods:
coarse to fine, anchors first; every run pays for its own anchors). For each: seconds, U-Net calls (full
and shallow) and batch items, fidelity to the full-compute frames (PSNR, and SSIM on grey 7 x 7 windows:
mean and worst frame), and smoothness (1 - Gini of adjacent RMS pixel distances, core.metrics).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import show
from engine.fidelity import grey, psnr, ssim

PROMPTS = ("a futuristic cityscape, vibrant and detailed", "a cheerful girl in a magical forest")
SHARED = {"in_between": "shared"}
#: (label, the settings it changes); the first is the reference.
SETTINGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("full compute", {}),
    ("guidance until 0.8", {"guidance_until": 0.8}),
    ("guidance until 0.6", {"guidance_until": 0.6}),
    ("guidance until 0.4", {"guidance_until": 0.4}),
    ("DeepCache N=2", {"deep_cache_interval": 2}),
    ("DeepCache N=3", {"deep_cache_interval": 3}),
    ("DeepCache N=5", {"deep_cache_interval": 5}),
    ("guidance until 0.6 + DeepCache N=2", {"guidance_until": 0.6, "deep_cache_interval": 2}),
    ("guidance until 0.4 + DeepCache N=3", {"guidance_until": 0.4, "deep_cache_interval": 3}),
    ("shared in-betweens", SHARED),
    ("shared + neighbour reuse from 0.5", {**SHARED, "neighbour_reuse_from": 0.5}),
    ("shared + neighbour reuse from 0.7", {**SHARED, "neighbour_reuse_from": 0.7}),
    ("shared + neighbour reuse from 0.9", {**SHARED, "neighbour_reuse_from": 0.9}),
    (
        "shared + neighbour reuse from 0.5 + DeepCache N=2",
        {**SHARED, "neighbour_reuse_from": 0.5, "deep_cache_interval": 2},
    ),
    (
        "shared + neighbour reuse from 0.5 + guidance until 0.6",
        {**SHARED, "neighbour_reuse_from": 0.5, "guidance_until": 0.6},
    ),
)


class Counting:
    """The engine, counting every render's U-Net calls, shallow calls and batch items."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.calls = self.shallow = self.items = self.shallow_items = 0

    def render(self, *args: Any, **kwargs: Any) -> Any:
        images = self.engine.render(*args, **kwargs)
        stats = self.engine.last_stats
        self.calls += stats.unet_calls
        self.shallow += stats.shallow_calls
        self.items += stats.unet_items
        self.shallow_items += stats.shallow_items
        return images

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def render_all(engine: Any, args: argparse.Namespace, settings: dict[str, Any]) -> dict[str, Any]:
    """Every frame of the transition with `settings`, batch by batch as a worker renders them."""
    from bench import methods
    from engine.neighbours import FeatureStore

    snapshot = methods.snapshot_for(
        PROMPTS,
        model=args.model,
        frames=args.frames,
        steps=args.steps,
        size=args.size,
        batch_size=args.batch,
        seeds=(args.seed, args.seed),
        **settings,
    )
    engine._latents.clear()  # every run pays for its own anchors and their features
    engine.features = FeatureStore()
    counting = Counting(engine)
    run = methods.render(counting, snapshot)  # type: ignore[arg-type]
    return {
        "images": run.images,
        "seconds": run.seconds,
        "calls": counting.calls,
        "shallow": counting.shallow,
        "items": counting.items,
        "shallow_items": counting.shallow_items,
    }


def smoothness(images: Sequence[Any]) -> float:
    from core.metrics import smoothness as one_minus_gini

    pictures = [np.asarray(i.convert("RGB"), dtype=np.float64) / 255.0 for i in images]
    distances = [float(np.sqrt(((a - b) ** 2).mean())) for a, b in zip(pictures, pictures[1:], strict=False)]
    return one_minus_gini(distances)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.evaluations", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="segue-mini")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting, interleaved (median)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from engine.pipeline import Engine

    engine = Engine.load(args.model, device="cpu")
    render_all(engine, args, {})  # warm-up: caches, allocator
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in SETTINGS}
    for _ in range(args.repeats):  # interleaved: a slow spell of a shared machine hits every setting alike
        for label, settings in SETTINGS:
            runs[label].append(render_all(engine, args, settings))
            print(f"{label}: {runs[label][-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
    results = []
    reference = None
    for label, _ in SETTINGS:
        result = dict(runs[label][0], seconds=statistics.median(r["seconds"] for r in runs[label]))
        result["spread"] = (min(r["seconds"] for r in runs[label]), max(r["seconds"] for r in runs[label]))
        greys = [grey(i) for i in result["images"]]
        if reference is None:
            reference = greys
        ssims = [ssim(a, b) for a, b in zip(greys, reference, strict=True)]
        psnrs = [psnr(a, b) for a, b in zip(greys, reference, strict=True)]
        result.update(
            label=label,
            ssim_mean=float(np.mean(ssims)),
            ssim_min=float(np.min(ssims)),
            psnr_mean=float(np.mean([p for p in psnrs if np.isfinite(p)] or [float("inf")])),
            smooth=smoothness(result["images"]),
        )
        results.append(result)
        print(f"{label}: {result['seconds']:.2f} s, SSIM {result['ssim_mean']:.4f}", file=sys.stderr)
    base = results[0]
    lines = [
        f"{args.model}, {args.frames} frames, {args.steps} steps, {args.size} x {args.size}, "
        f"batch {args.batch}, {args.threads} thread(s), guidance 7.5, DPM-Solver++, "
        f"median of {args.repeats}; fidelity against full compute; shared in-betweens from step "
        f"{max(1, args.steps // 2)}",
        "",
        "| setting | seconds (min-max) | speed-up | U-Net calls (shallow) | batch items (shallow) "
        "| SSIM mean | SSIM worst | PSNR dB | smoothness |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        psnr_cell = "∞" if not np.isfinite(r["psnr_mean"]) else f"{r['psnr_mean']:.1f}"
        low, high = r["spread"]
        lines.append(
            f"| {r['label']} | {r['seconds']:.2f} ({low:.1f}-{high:.1f}) | "
            f"{base['seconds'] / r['seconds']:.2f}x | {r['calls']} ({r['shallow']}) | {r['items']} "
            f"({r['shallow_items']}) | "
            f"{r['ssim_mean']:.4f} | {r['ssim_min']:.4f} | {psnr_cell} | {r['smooth']:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    return show(text, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
