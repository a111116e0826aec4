"""Comparing rendered frames: their pixels and PSNR on 0-255 levels (grey and SSIM: engine.fidelity)."""

from __future__ import annotations

import numpy as np


def pixels(images: list) -> list[np.ndarray]:  # type: ignore[type-arg]
    return [np.asarray(i, dtype=np.int16) for i in images]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
