"""1. The naive loop: diffusers' StableDiffusionPipeline once per frame, the baseline."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.throughput.common import END_PROMPT, START_PROMPT, Run, frame_ts, log


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
