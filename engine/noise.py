"""Noise latents between two seeds: the paths a frame's starting noise can follow.

For independent a, b ~ N(0, I):
- linear:      (1 - γ) a + γ b. Its variance is γ² + (1 - γ)², 0.5 at the midpoint (std 0.707): the
               denoiser reads "too little noise" and renders a washed-out, blurry middle.
- normalized:  linear / sqrt(γ² + (1 - γ)²): unit variance again at every γ.
- slerp:       along the great circle between a and b (engine.interpolation.slerp, flattened per
               latent); keeps the norm, so std stays ≈ 1.
- translate:   concatenate a and b along the width, [a | b], and slide a window one latent wide across it:
               at γ the window starts round(γ · width) columns in. Every column is a column of a or b, so
               the noise stays exactly N(0, I); the picture's content slides sideways.
- translate_mix (the single-slice mix variant, engine only): no sliding; the columns of a are replaced
               by b's in place, left to right, with the one column at the boundary mixed (normalized) by
               the fraction; nothing moves, the new noise "wipes" in.
Every path returns exactly a at γ = 0 and exactly b at γ = 1, and a itself when a and b are the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import get_args

import torch

from core.params import NoiseInterpolation
from engine.interpolation import lerp, normalized_lerp, slerp

NoisePath = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def _check(a: torch.Tensor, b: torch.Tensor, t: float) -> None:
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim != 4:
        raise ValueError(f"noise latents have shape (batch, channels, height, width), got {tuple(a.shape)}")
    if not (math.isfinite(t) and 0.0 <= t <= 1.0):
        raise ValueError(f"t must be a finite number in [0, 1], got {t}")


def linear(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    _check(a, b, t)
    return lerp(a, b, t)


def normalized(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    _check(a, b, t)
    return normalized_lerp(a, b, t)


def spherical(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    _check(a, b, t)
    return slerp(a, b, t)


def translate(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """The window [offset, offset + width) of [a | b] (joined along the width); offset = round(t · width)."""
    _check(a, b, t)
    width = a.shape[-1]
    offset = round(t * width)
    if offset <= 0:
        return a.clone()
    if offset >= width:
        return b.clone()
    return torch.cat([a[..., offset:], b[..., :offset]], dim=-1)


def translate_mix(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """a with its first t·width columns replaced by b's, the boundary column mixed with unit variance."""
    _check(a, b, t)
    if t <= 0.0:
        return a.clone()
    if t >= 1.0:
        return b.clone()
    width = a.shape[-1]
    position = t * width
    whole = int(position)
    out = a.clone()
    out[..., :whole] = b[..., :whole]
    fraction = position - whole
    if whole < width and fraction > 0.0:
        out[..., whole : whole + 1] = normalized_lerp(
            a[..., whole : whole + 1], b[..., whole : whole + 1], fraction
        )
    return out


PATHS: dict[str, NoisePath] = {
    "linear": linear,
    "normalized": normalized,
    "slerp": spherical,
    "translate": translate,
    "translate_mix": translate_mix,
}
assert set(get_args(NoiseInterpolation)) <= set(PATHS), "core.params names the noise paths the engine offers"


def interpolate_noise(a: torch.Tensor, b: torch.Tensor, t: float, path: str) -> torch.Tensor:
    """The noise at t on `path` between a and b."""
    try:
        fn = PATHS[path]
    except KeyError:
        raise ValueError(f"noise path must be one of {', '.join(PATHS)}, got {path!r}") from None
    return fn(a, b, t)


def seed_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The noise latent of a seed, drawn on the CPU in float32 so every device gets the same noise."""
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))


def noise_between(seed_a: int, seed_b: int, t: float, path: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The frame's noise: seed_a's noise when both seeds are one (whatever the path), else the path at t."""
    if seed_a == seed_b or t <= 0.0:
        return seed_noise(seed_a, shape)
    if t >= 1.0:
        return seed_noise(seed_b, shape)
    return interpolate_noise(seed_noise(seed_a, shape), seed_noise(seed_b, shape), t, path)
