"""Fit a model's latent -> RGB preview projection and ship it next to its model_index.json.

Per-step previews project latents to RGB with one matrix (no VAE). Stable Diffusion's factors are wrong
for Segue-mini's VAE, so fit them: encode a few hundred world images, decode the latents, downscale the
decoded RGB to the latent grid and solve least squares [latent, 1] -> RGB in [-1, 1].

    python -m training.fit_preview [--model models/segue-mini] [--n 400]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from engine.pipeline import PREVIEW_FACTORS_FILE, SD_LATENT_RGB_FACTORS
from training.common import to_tensor
from training.world import make_dataset


def fit(vae: AutoencoderKL, images: np.ndarray, batch: int = 50) -> tuple[np.ndarray, np.ndarray, dict]:
    """(factors C x 3, bias 3, report) fitted on `images` (N, H, W, 3 uint8)."""
    scale = vae.config.scaling_factor
    xs, ys = [], []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            pixels = to_tensor(images[start : start + batch])
            latents = vae.encode(pixels).latent_dist.sample(generator=torch.Generator().manual_seed(start))
            decoded = vae.decode(latents).sample.clamp(-1, 1)
            small = F.adaptive_avg_pool2d(decoded, latents.shape[-2:])
            xs.append((latents * scale).permute(0, 2, 3, 1).reshape(-1, latents.shape[1]))
            ys.append(small.permute(0, 2, 3, 1).reshape(-1, 3))
    x, y = torch.cat(xs).double().numpy(), torch.cat(ys).double().numpy()
    design = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    factors, bias = solution[:-1], solution[-1]
    sd = np.asarray(SD_LATENT_RGB_FACTORS)
    report = {
        "images": len(images),
        "rmse_fitted": float(np.sqrt(((design @ solution - y) ** 2).mean())),
        "rmse_sd_factors": float(np.sqrt(((x @ sd - y) ** 2).mean())) if sd.shape[0] == x.shape[1] else None,
    }
    return factors, bias, report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("models/segue-mini"))
    parser.add_argument("--n", type=int, default=400, help="world images to fit on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    vae = AutoencoderKL.from_pretrained(args.model / "vae").eval()
    images, _, _ = make_dataset(args.n, seed=args.seed, split="any", n_captions=1)
    factors, bias, report = fit(vae, images)
    out = {
        "factors": [[round(float(v), 5) for v in row] for row in factors],
        "bias": [round(float(v), 5) for v in bias],
        "fitted_on": report,
    }
    (args.model / PREVIEW_FACTORS_FILE).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
