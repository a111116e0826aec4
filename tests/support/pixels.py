"""Comparing rendered frames: their pixels, PSNR, and a windowed SSIM on grey levels."""

from __future__ import annotations

from typing import Any

import numpy as np


def pixels(images: list) -> list[np.ndarray]:  # type: ignore[type-arg]
    return [np.asarray(i, dtype=np.int16) for i in images]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def grey(image: Any) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> float:
    """Mean SSIM over window x window patches (uniform weights, Wang et al.'s constants)."""
    from numpy.lib.stride_tricks import sliding_window_view

    def means(x: np.ndarray) -> np.ndarray:
        return sliding_window_view(x, (window, window)).mean(axis=(-1, -2))

    c1, c2 = 0.01**2, 0.03**2
    ma, mb = means(a), means(b)
    va, vb = means(a * a) - ma**2, means(b * b) - mb**2
    cov = means(a * b) - ma * mb
    values = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return float(values.mean())
