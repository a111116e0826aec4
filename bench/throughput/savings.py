"""7. Fewer U-Net evaluations (issue 20 §2) on Segue's engine: each saving that exists as a setting, and
their combinations, against full compute on the same frames at the same batch: frames/s and fidelity
(SSIM on grey 7 x 7 windows, mean and worst frame: bench.evaluations.ssim)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.throughput.common import END_PROMPT, START_PROMPT, Run, chunks, frame_ts, log, pixel_settings

#: (label, guidance_until, deep_cache_interval, deep_cache_from): combinations of the settings that exist.
SAVINGS: tuple[tuple[str, float, int, float], ...] = (
    ("guidance until 0.6", 0.6, 1, 0.0),
    ("DeepCache N=2", 1.0, 2, 0.0),
    ("DeepCache N=3", 1.0, 3, 0.0),
    ("DeepCache N=2 from 0.4", 1.0, 2, 0.4),
    ("DeepCache N=3 from 0.4", 1.0, 3, 0.4),
    ("DeepCache N=3 from 0.6", 1.0, 3, 0.6),
    ("guidance until 0.6 + DeepCache N=2", 0.6, 2, 0.0),
)


def fidelity(images: dict[int, Any], reference: dict[int, Any]) -> tuple[float, float]:
    """(mean, worst) SSIM of each frame to the same frame at full compute."""
    from engine.fidelity import grey, ssim

    values = [ssim(grey(images[i]), grey(reference[i])) for i in reference if i in images]
    return sum(values) / len(values), min(values)


def savings_runs(engine: Any, args: argparse.Namespace, batch: int) -> list[Run]:
    """Every frame, coarse to fine, at `batch`, with each saving; the fidelity goes in the note."""
    import torch

    from core.params import PixelSettings
    from core.timeline import render_order
    from engine.pipeline import FrameRequest

    base = pixel_settings(args)
    ts = frame_ts(args.frames)
    requests = [FrameRequest(START_PROMPT, END_PROMPT, t) for t in ts]
    runs = []
    for label, until, interval, cache_from in SAVINGS:
        params = PixelSettings(
            **dict(
                base.model_dump(),
                guidance_until=until,
                deep_cache_interval=interval,
                deep_cache_from=cache_from,
            )
        )
        run = Run(f"Segue engine, {label}", batch, args.frames, 0.0, threads=f"{torch.get_num_threads()}")
        items = 0
        started = time.perf_counter()
        for group in chunks(render_order(args.frames), batch):
            images = engine.render(params, [requests[i] for i in group])
            items += engine.last_stats.unet_items
            run.images.update(zip(group, images, strict=True))
        run.seconds = time.perf_counter() - started
        run.unet_items = items
        runs.append(run)
        log(f"engine batch {batch}, {label}: {run.seconds:.1f} s, {run.fps:.2f} frames/s")
    return runs
