"""Render throughput on this machine: batch sizes side by side with batch size 1 as the baseline.

    python -m bench.batch_sizes [--model segue-tiny] [--frames 12] [--steps 10] [--size 64] [--batches 1 3 6]

Prints one row per batch size: seconds, frames per second and the speed-up over the baseline, plus the
cost of encoding prompts with and without the engine's per-process cache.
"""

from __future__ import annotations

import argparse
import time

import torch

from core.params import PixelSettings
from engine.pipeline import FrameRequest, get_engine
from infra.config import get_settings


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--model", default=get_settings().model)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 3, 6])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    models_dir = get_settings().models_folder
    engine = get_engine(args.model, models_dir=models_dir, device=args.device)
    params = PixelSettings(
        model=args.model, seed=0, steps=args.steps, guidance_scale=7.5, width=args.size, height=args.size
    )
    frames = [
        FrameRequest("a futuristic cityscape", "a girl in a magical forest", i / (args.frames - 1))
        for i in range(args.frames)
    ]
    engine.render(params, frames[:1])  # warm-up: kernels, caches, the scheduler's first call

    print(f"model {args.model} on {engine.device} ({engine.dtype}), torch threads {torch.get_num_threads()}")
    print(f"{args.frames} frames, {args.steps} steps, {args.size}x{args.size}")
    print(f"{'batch':>5} {'seconds':>8} {'frames/s':>9} {'vs batch 1':>10}")
    baseline = None
    for batch in args.batches:
        start = time.perf_counter()
        for i in range(0, len(frames), batch):
            engine.render(params, frames[i : i + batch])
        seconds = time.perf_counter() - start
        baseline = baseline or seconds
        print(f"{batch:>5} {seconds:>8.2f} {args.frames / seconds:>9.2f} {baseline / seconds:>9.2f}x")

    prompts = [f"prompt number {i}" for i in range(32)]
    start = time.perf_counter()
    engine.encode(prompts)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    engine.encode(prompts)
    warm = time.perf_counter() - start
    print(f"encode 32 prompts: {cold * 1000:.1f} ms uncached, {warm * 1000:.2f} ms cached")


if __name__ == "__main__":
    main()
