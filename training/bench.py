"""Render benchmark: 64x64, 25 steps, batch of 8, classifier-free guidance, on CPU.

.venv/bin/python -m training.bench [--scheduler dpm|ddim|euler] [--runs 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from . import common


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(common.MODEL_DIR))
    ap.add_argument("--scheduler", default="dpm")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from .evaluate import load_pipe

    pipe = load_pipe(a.model, a.scheduler)
    prompts = ["a futuristic cityscape", "a girl in a magical forest"] * 4
    g = torch.Generator().manual_seed(0)
    pipe(prompts[:2], height=64, width=64, num_inference_steps=2, generator=g)  # warm-up
    times = []
    for _ in range(a.runs):
        g = torch.Generator().manual_seed(0)
        t = time.perf_counter()
        pipe(prompts, height=64, width=64, num_inference_steps=25, guidance_scale=7.5, generator=g)
        times.append(time.perf_counter() - t)
    print(
        f"64x64, 25 steps ({a.scheduler}), batch 8, CFG, torch threads={torch.get_num_threads()}: "
        f"best {min(times):.2f}s  median {sorted(times)[len(times) // 2]:.2f}s over {a.runs} runs"
    )


if __name__ == "__main__":
    main()
