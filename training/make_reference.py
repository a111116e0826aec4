"""Write tests/training/reference_seed0.png (the fixed-seed render the tests compare against)
and a few demo PNGs into models/segue-mini/samples/."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from . import common
from .evaluate import load_pipe, save_strip


def main():
    torch.set_num_threads(2)
    pipe = load_pipe(common.MODEL_DIR, "dpm")
    g = torch.Generator().manual_seed(0)
    a = pipe(
        ["a girl in a magical forest"],
        height=64,
        width=64,
        num_inference_steps=25,
        guidance_scale=5.0,
        generator=g,
        output_type="np",
    ).images
    Image.fromarray((a[0] * 255).round().astype(np.uint8)).save(
        common.ROOT / "tests" / "mini" / "reference_seed0.png"
    )
    out = common.MODEL_DIR / "samples"
    out.mkdir(exist_ok=True)
    prompts = [
        "a futuristic cityscape",
        "a girl in a magical forest",
        "a city at night with a full moon",
        "a boat on the sea at sunset",
        "a pyramid in the desert during the day",
        "a red house in a snowy landscape",
        "a brown dog in a meadow with flowers",
        "mountains at night under a starry sky",
    ]
    rows = []
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        r = pipe(
            prompts,
            height=64,
            width=64,
            num_inference_steps=25,
            guidance_scale=7.5,
            generator=g,
            output_type="np",
        ).images
        rows.append((r * 255).round().astype(np.uint8))
    save_strip(np.concatenate(rows), out / "prompts_grid.png", scale=3, nrow=8)
    (out / "prompts_grid.txt").write_text(
        "columns (left to right), rows = seeds 0,1,2, DPM-Solver 25 steps, CFG 7.5:\n"
        + "\n".join(prompts)
        + "\n"
    )


if __name__ == "__main__":
    main()
