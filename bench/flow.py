"""Optical-flow in-betweens against a crossfade, on a synthetic moving disc (docs/animatics.md).

A textured disc moves `step` pixels between two frames over a textured background; the true middle frame
has it halfway. PSNR of each method's middle frame against the true one, and milliseconds per synthesized
frame, at 64 x 64 (the target: flow beats the crossfade by >= 3 dB at <= 5 ms a frame) and 512 x 512.

    python -m bench.flow [--step 6] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from worker.inbetween import crossfade, flow_inbetween


def scene(size: int, centre: tuple[float, float], radius: float, seed: int = 0) -> np.ndarray:
    """An RGB frame: a smooth gradient background and a striped disc at `centre` (sub-pixel, antialiased)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    background = np.stack([x / size * 180 + 30, y / size * 120 + 60, np.full_like(x, 90)], axis=-1)
    background += rng.normal(0, 0, background.shape)  # fixed, noiseless: flow has to follow the disc alone
    dist = np.hypot(x - centre[0], y - centre[1])
    inside = np.clip(radius - dist + 0.5, 0, 1)[..., None]
    stripes = 0.5 + 0.5 * np.sin((x - centre[0]) / max(1.0, radius / 3))
    disc = np.stack([230 * stripes + 20, 60 + 0 * stripes, 240 - 200 * stripes], axis=-1)
    return np.clip(background * (1 - inside) + disc * inside + 0.5, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def measure(size: int, step: float, repeats: int) -> dict[str, float]:
    radius = size * 0.18
    start = (size * 0.35, size * 0.5)
    a = scene(size, start, radius)
    b = scene(size, (start[0] + step, start[1] + step / 2), radius)
    truth = scene(size, (start[0] + step / 2, start[1] + step / 4), radius)
    made, how = flow_inbetween(a, b, 0.5)
    fade = crossfade(a, b, 0.5)
    flow_inbetween(a, b, 0.5)  # warm up OpenCV
    started = time.perf_counter()
    for _ in range(repeats):
        flow_inbetween(a, b, 0.5)
    seconds = (time.perf_counter() - started) / repeats
    return {
        "size": size,
        "step": step,
        "method": how,
        "psnr_flow": psnr(made, truth),
        "psnr_crossfade": psnr(fade, truth),
        "ms_per_frame": seconds * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--step", type=float, default=6.0, help="pixels the disc moves at 64 x 64")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    import cv2

    cv2.setNumThreads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    head = ("size", 5), ("step", 5), ("method", 9), ("PSNR flow", 10), ("PSNR fade", 10), ("gain dB", 8)
    print(" ".join(f"{name:>{width}}" for name, width in head), f"{'ms/frame':>9}")
    for size in (64, 512):
        row = measure(size, args.step * size / 64, args.repeats if size == 64 else max(2, args.repeats // 10))
        print(
            f"{row['size']:>5} {row['step']:>5.1f} {row['method']:>9} {row['psnr_flow']:>10.2f} "
            f"{row['psnr_crossfade']:>10.2f} {row['psnr_flow'] - row['psnr_crossfade']:>8.2f} "
            f"{row['ms_per_frame']:>9.2f}"
        )


if __name__ == "__main__":
    main()
