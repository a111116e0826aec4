"""Timeline math: which keyframes bracket a frame, the order frames are rendered in, and a frame's identity.

Pure Python on purpose: the web app imports this module to plan renders, and it must not pull in torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from core.params import PixelSettings

#: Positions closer than this are the same point on the timeline, everywhere (API, forms, planner).
POSITION_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Key:
    """A keyframe on the timeline: a prompt pinned at a position in [0, 1]."""

    position: float
    prompt: str


@dataclass(frozen=True)
class FramePlan:
    """Where one frame sits: its global t, the segment it falls in and the blend inside that segment."""

    index: int
    t: float
    segment: int
    prompt_a: str
    prompt_b: str
    local_t: float


def frame_times(n: int) -> list[float]:
    """n evenly spaced positions with exact endpoints 0.0 and 1.0."""
    if n < 2:
        raise ValueError(f"frames must be at least 2, got {n}")
    return [0.0 if i == 0 else 1.0 if i == n - 1 else i / (n - 1) for i in range(n)]


def check_keys(keys: Sequence[Key]) -> list[Key]:
    """Sorted keyframes, validated: the first at 0, the last at 1, positions strictly increasing."""
    ordered = sorted(keys, key=lambda k: k.position)
    if len(ordered) < 2:
        raise ValueError("a timeline needs at least two keyframes (start and end)")
    if abs(ordered[0].position) > POSITION_TOLERANCE or abs(ordered[-1].position - 1.0) > POSITION_TOLERANCE:
        raise ValueError("the first keyframe must sit at position 0 and the last at position 1")
    for left, right in zip(ordered, ordered[1:], strict=False):
        if right.position - left.position <= POSITION_TOLERANCE:
            raise ValueError(f"two keyframes share position {right.position}")
    return ordered


def locate(t: float, keys: Sequence[Key]) -> tuple[int, float]:
    """(segment index, local t) for a global t; keys must be sorted and checked.

    A frame exactly on an inner keyframe belongs to the segment that starts there (local t = 0),
    so it shows that keyframe's prompt unblended.
    """
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be within 0..1, got {t}")
    last = len(keys) - 2
    for segment in range(last + 1):
        start, end = keys[segment].position, keys[segment + 1].position
        if t < end or segment == last:
            local = (t - start) / (end - start)
            return segment, min(1.0, max(0.0, local))
    raise AssertionError("unreachable: keys cover 0..1")


def plan_frames(keys: Sequence[Key], n: int) -> list[FramePlan]:
    """Every frame of an n-frame render of the timeline given by keys."""
    ordered = check_keys(keys)
    plans = []
    for index, t in enumerate(frame_times(n)):
        segment, local_t = locate(t, ordered)
        plans.append(
            FramePlan(
                index=index,
                t=t,
                segment=segment,
                prompt_a=ordered[segment].prompt,
                prompt_b=ordered[segment + 1].prompt,
                local_t=local_t,
            )
        )
    return plans


def render_order(n: int) -> list[int]:
    """Frame indices coarse to fine: both ends, the middle, then the quarters and so on.

    A person sees the shape of the whole transition after a few frames instead of waiting for the end.
    """
    if n <= 0:
        return []
    order = [0] if n == 1 else [0, n - 1]
    seen = set(order)
    intervals = [(0, n - 1)]
    while intervals:
        next_intervals = []
        for lo, hi in intervals:
            if hi - lo < 2:
                continue
            mid = (lo + hi) // 2
            if mid not in seen:
                seen.add(mid)
                order.append(mid)
            next_intervals += [(lo, mid), (mid, hi)]
        intervals = next_intervals
    return order


def frame_key(pixels: PixelSettings, plan: FramePlan, model_revision: str = "") -> str:
    """Content hash of a frame: equal keys mean equal pixels, so a stored image can be reused.

    A frame at local t 0 or 1 is just one prompt, so its key does not depend on the other keyframe.
    The model's revision is part of the key: frames of older weights are not reused after an update.
    """
    if plan.local_t <= 0.0:
        blend = (plan.prompt_a, plan.prompt_a, 0.0)
    elif plan.local_t >= 1.0:
        blend = (plan.prompt_b, plan.prompt_b, 0.0)
    else:
        blend = (plan.prompt_a, plan.prompt_b, round(plan.local_t, 12))
    payload = {"v": 2, **pixels.model_dump(), "model_revision": model_revision, "blend": blend}
    if blend[0] == blend[1]:
        # With a single prompt, lerp and slerp give the same embedding.
        payload["text_interpolation"] = "-"
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()[:40]
