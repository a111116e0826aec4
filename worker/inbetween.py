"""In-betweens by dense optical flow: frames synthesized between rendered ones to reach a higher frame rate.

The weight-free baseline of frame interpolation (RIFE and FILM need weights no registry here ships):
OpenCV's DIS dense flow in both directions, each neighbour warped to time w along its flow, the two warps
blended by distance. Where flow cannot explain the change (a cut, a jump), the warped frames disagree
with each other: then a plain crossfade is used instead, and the caller records where. Torch-free; numpy
and OpenCV on uint8 RGB arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

#: Mean absolute difference (0..255) between the two warped frames above which flow is not trusted.
DISAGREEMENT = 12.0
#: ... and between the two source frames above which the change is a cut, not motion.
CUT = 60.0


@dataclass(frozen=True)
class Slot:
    """One output frame: source frame `a` alone (weight 0), or between `a` and `a + 1` at `weight`."""

    a: int
    weight: float


def schedule(count: int, source_fps: int, target_fps: int) -> list[Slot]:
    """Output frames at target_fps over the time count source frames play at source_fps.

    The video keeps its length: count / source_fps s, so count x target / source frames (rounded).
    """
    if count < 1:
        return []
    ratio = Fraction(source_fps, target_fps)
    total = max(1, round(count * target_fps / source_fps))
    out = []
    for j in range(total):
        x = j * ratio
        a = min(int(x), count - 1)
        weight = float(x - a) if a < count - 1 else 0.0
        out.append(Slot(a, round(weight, 6)))
    return out


def _flow(a_grey: np.ndarray, b_grey: np.ndarray) -> np.ndarray:
    """Dense flow from a to b: a(x) ~ b(x + flow(x)). DIS (Kroeger et al. 2016) follows large motion that
    Farneback loses at 512 x 512 (bench/flow.py) and is faster; the fast preset suits small frames."""
    import cv2

    preset = (
        cv2.DISOPTICAL_FLOW_PRESET_MEDIUM if min(a_grey.shape) >= 128 else cv2.DISOPTICAL_FLOW_PRESET_FAST
    )
    dis = cv2.DISOpticalFlow_create(preset)  # type: ignore[attr-defined]
    return np.asarray(dis.calc(a_grey, b_grey, None))


def _warp(image: np.ndarray, flow: np.ndarray, scale: float) -> np.ndarray:
    """image sampled at (x, y) + scale x flow(x, y) (backward warping)."""
    import cv2

    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = grid_x + scale * flow[..., 0]
    map_y = grid_y + scale * flow[..., 1]
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crossfade(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    mixed = (1.0 - weight) * a.astype(np.float32) + weight * b.astype(np.float32)
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def flow_inbetween(a: np.ndarray, b: np.ndarray, weight: float) -> tuple[np.ndarray, str]:
    """The frame at `weight` between RGB frames a and b, and how it was made ("flow" or "crossfade")."""
    import cv2

    if np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() > CUT:
        return crossfade(a, b, weight), "crossfade"
    grey_a = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    grey_b = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    forward = _flow(grey_a, grey_b)  # a(x) ~ b(x + forward(x))
    backward = _flow(grey_b, grey_a)  # b(x) ~ a(x + backward(x))
    # The frame at w shows at x what a shows at x - w*d (d: the motion from a to b) and b at x + (1-w)*d;
    # the flows at x stand in for d there (exact for motion that is smooth over its own length).
    from_a = _warp(a, backward, weight)
    from_b = _warp(b, forward, 1.0 - weight)
    if np.abs(from_a.astype(np.int16) - from_b.astype(np.int16)).mean() > DISAGREEMENT:
        return crossfade(a, b, weight), "crossfade"
    return crossfade(from_a, from_b, weight), "flow"
