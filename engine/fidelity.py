"""How close a picture is to a reference, on grey levels in [0, 1]: what the benchmarks and tests report.

Numpy only; distances between a render's own frames (the confusion map's scorers) are engine/scorers.py's.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def grey(image: Any) -> np.ndarray:
    """A PIL image as grey levels in [0, 1]."""
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


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of grey levels in [0, 1] (inf for equal pictures)."""
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)
