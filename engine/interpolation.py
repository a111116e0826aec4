"""Interpolation between two tensors: text embeddings today, noise latents later.

Pure functions of torch tensors, no model code. Every function works in float32 (or float64 when the
inputs are float64) and returns the dtype of its inputs, so fp16 embeddings on a GPU are interpolated
without losing precision in the trigonometry.

Shape convention for `slerp`: dimension 0 is a batch dimension and everything after it is flattened
into one vector per batch item. A text embedding of shape (1, 77, 768) is therefore slerped as one
59136-dimensional vector (not token by token); reshape to (77, 768) first for per-token slerp.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

Method = Literal["lerp", "slerp"]
METHODS: tuple[Method, ...] = ("lerp", "slerp")


def _check(a: torch.Tensor, b: torch.Tensor, t: float) -> None:
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dtype != b.dtype:
        raise ValueError(f"a and b must have the same dtype, got {a.dtype} and {b.dtype}")
    if not a.is_floating_point():
        raise ValueError(f"a and b must be floating point tensors, got {a.dtype}")
    if not (math.isfinite(t) and 0.0 <= t <= 1.0):
        raise ValueError(f"t must be a finite number in [0, 1], got {t}")


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # fp16/bf16 have too few bits for acos/sin near the endpoints; never go below float32.
    return torch.promote_types(dtype, torch.float32)


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Linear interpolation `(1 - t) * a + t * b`; returns exactly `a` at t=0 and exactly `b` at t=1."""
    return _divided_lerp(a, b, t, 1.0)


def normalized_lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """`lerp` divided by sqrt(t^2 + (1-t)^2).

    For independent standard Gaussian noise a and b, lerp(a, b, t) has variance t^2 + (1-t)^2 (0.5 at the
    midpoint), which the denoiser reads as "too little noise" and renders as a washed-out frame; the
    division restores unit variance. The factor is 1 at both endpoints, so they stay exact.
    """
    return _divided_lerp(a, b, t, math.sqrt(t * t + (1.0 - t) * (1.0 - t)))


def _divided_lerp(a: torch.Tensor, b: torch.Tensor, t: float, divisor: float) -> torch.Tensor:
    """lerp(a, b, t) / divisor in at least float32, and exactly a at t=0 and exactly b at t=1."""
    _check(a, b, t)
    if t == 0.0:
        return a.clone()
    if t == 1.0:
        return b.clone()
    work = _compute_dtype(a.dtype)
    return (torch.lerp(a.to(work), b.to(work), t) / divisor).to(a.dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, dot_threshold: float = 0.9995) -> torch.Tensor:
    """Spherical interpolation per batch item (dim 0), over the flattened remaining dimensions.

    Walks along the great circle between the directions of a and b, mixing with the weights
    sin((1-t)θ)/sinθ and sin(tθ)/sinθ, so when |a| == |b| every result has that same norm. Where the
    two vectors are near-parallel or near-opposite (|cos θ| > dot_threshold) or one is zero, sinθ is
    too small to divide by and the angle is meaningless, so that item falls back to `lerp`.
    Returns exactly a at t=0 and exactly b at t=1.
    """
    _check(a, b, t)
    if not 0.0 < dot_threshold < 1.0:
        raise ValueError(f"dot_threshold must be in (0, 1), got {dot_threshold}")
    if a.ndim == 0:
        raise ValueError("slerp needs tensors with at least one dimension (dim 0 is the batch)")
    if t == 0.0:
        return a.clone()
    if t == 1.0:
        return b.clone()

    work = _compute_dtype(a.dtype)
    flat_a = a.to(work).reshape(a.shape[0], -1)
    flat_b = b.to(work).reshape(b.shape[0], -1)
    norm_a = flat_a.norm(dim=1, keepdim=True)
    norm_b = flat_b.norm(dim=1, keepdim=True)
    tiny = torch.finfo(work).tiny
    cos_theta = ((flat_a * flat_b).sum(dim=1, keepdim=True) / (norm_a * norm_b).clamp_min(tiny)).clamp(-1, 1)

    theta = torch.acos(cos_theta)
    # Clamped so the unused branch of torch.where stays finite where the lerp fallback is taken.
    sin_theta = torch.sin(theta).clamp_min(1e-6)
    spherical = (torch.sin((1.0 - t) * theta) * flat_a + torch.sin(t * theta) * flat_b) / sin_theta

    degenerate = (cos_theta.abs() > dot_threshold) | (norm_a == 0) | (norm_b == 0)
    linear = torch.lerp(flat_a, flat_b, t)
    return torch.where(degenerate, linear, spherical).reshape(a.shape).to(a.dtype)


def interpolate(a: torch.Tensor, b: torch.Tensor, t: float, method: str = "lerp") -> torch.Tensor:
    """Interpolate a→b at t in [0, 1] with `method` ("lerp" or "slerp")."""
    if method == "lerp":
        return lerp(a, b, t)
    if method == "slerp":
        return slerp(a, b, t)
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
