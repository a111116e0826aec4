"""Probe passes for perceptual, Beta and adaptive spacing: render cheap frames, measure their distances.

A probe frame is the real frame (same prompts, noise path, switch step, size, guidance) rendered at few
steps (PROBE_STEPS). The distance between two probe frames is the root-mean-square difference of their
pixels in [0, 1] (at most 64 px on the long side): cheap, and needs no other model. Both the feature and
the distance are parameters of `place`, so a scorer's embedding distance (engine/scorers.py, CLIP or the
U-Net's up-block features) can replace them without touching the spacing math in core.spacing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import PIL.Image

from core import spacing
from core.params import RenderSnapshot, caps
from core.spacing import BetaWarp, Warp
from core.timeline import (
    FrameInputs,
    base_times,
    check_keys,
    cut_boundaries,
    frames_at,
    keys_of,
    plan_frames,
    weight_between,
)
from engine.pipeline import Engine, FrameRequest, SharedStart

#: Steps of a probe frame (at most the render's own steps).
PROBE_STEPS = 8
#: Probe frames of perceptual spacing when the transition sets no spacing_budget.
PERCEPTUAL_PROBES = 9

Feature = Any


#: The fields of a frame a stored frame row holds: all of FrameInputs' but attention and ends.
ROW_FIELDS = tuple(f.name for f in fields(FrameInputs) if f.name not in ("attention", "ends"))


def request_of(frame: Any) -> FrameRequest:
    """The engine request of a planned frame (core.timeline.FramePlan) or a stored frame row.

    A stored row carries no attention interpolation (worker/planning.py adds it from the render's plan)."""
    if isinstance(frame, FrameInputs):
        ends = frame.ends
        return FrameRequest(
            **frame.inputs(), ends=(request_of(ends[0]), request_of(ends[1])) if ends is not None else None
        )
    return FrameRequest(**{name: getattr(frame, name) for name in ROW_FIELDS})


def pixel_feature(image: PIL.Image.Image, size: int = 64) -> np.ndarray:
    """An image as float pixels in [0, 1], at most `size` px on its long side."""
    scale = size / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def pixel_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square pixel difference (0: the same picture, 1: black against white)."""
    return float(np.sqrt(np.mean((a - b) ** 2)))


@dataclass
class Placement:
    """What a probe pass decided: a curve (perceptual) or positions (adaptive), and what it measured."""

    spacing: str
    warp: Warp | BetaWarp | None = None
    times: list[float] | None = None
    probe_ts: list[float] = field(default_factory=list)
    probe_distances: list[float] = field(default_factory=list)
    probe_frames: int = 0
    reason: str = ""


def place(
    engine: Engine,
    snapshot: RenderSnapshot,
    *,
    feature: Callable[[PIL.Image.Image], Feature] = pixel_feature,
    distance: Callable[[Feature, Feature], float] = pixel_distance,
    should_cancel: Callable[[], bool] | None = None,
    render_plans: Callable[[Any, list[Any]], list[PIL.Image.Image]] | None = None,
) -> Placement:
    """Run the probe pass of a perceptual or adaptive render and say where its frames go.

    render_plans(probe pixel settings, frame plans) -> images: how the probe frames are made when some
    depend on keyframe images (the worker's image path, worker/keyframe_images.py); None: Engine.render."""
    keys = check_keys(keys_of(snapshot))
    probe_params = snapshot.pixels().model_copy(update={"steps": min(snapshot.steps, PROBE_STEPS)})
    cuts = cut_boundaries(keys)
    rendered = 0

    def measure(positions: list[float]) -> list[Feature]:
        nonlocal rendered
        plans = frames_at(
            keys,
            positions,
            seed=snapshot.seed,
            noise_path=snapshot.noise_interpolation,
            attention=snapshot.attention_interpolation,
        )
        requests = [request_of(plan) for plan in plans]
        features: list[Feature] = []
        for start in range(0, len(requests), snapshot.batch_size):
            chunk = requests[start : start + snapshot.batch_size]
            if render_plans is not None:
                images = render_plans(probe_params, list(plans[start : start + snapshot.batch_size]))
            else:
                images = engine.render(probe_params, chunk, should_cancel=should_cancel)
            features += [feature(image) for image in images]
        rendered += len(dict.fromkeys(requests))
        return features

    def across_cut(a: float, b: float) -> bool:
        return any(a < c <= b for c in cuts)

    if snapshot.spacing in ("perceptual", "beta"):
        count = snapshot.spacing_budget or PERCEPTUAL_PROBES
        ts = sorted({*spacing.grid(max(2, count)), *(k.position for k in keys)})
        feats = measure(ts)
        gaps = [
            0.0 if across_cut(a, b) else distance(fa, fb)
            for a, b, fa, fb in zip(ts, ts[1:], feats, feats[1:], strict=False)
        ]
        warp: Warp | BetaWarp = (
            spacing.Warp.from_distances(ts, gaps)
            if snapshot.spacing == "perceptual"
            else spacing.BetaWarp.fit(ts, gaps)
        )
        return Placement(
            snapshot.spacing, warp=warp, probe_ts=ts, probe_distances=gaps, probe_frames=rendered
        )

    if snapshot.spacing == "adaptive":
        ts = sorted(set(base_times(keys, snapshot.frames, "uniform")))
        feats = measure(ts)
        gaps = [distance(fa, fb) for fa, fb in zip(feats, feats[1:], strict=False)]
        smooth = [g for a, b, g in zip(ts, ts[1:], gaps, strict=False) if not across_cut(a, b)]
        threshold = spacing.adaptive_threshold(smooth, len(ts)) if smooth else math.inf
        planned = len(plan_frames(keys, snapshot.frames, seed=snapshot.seed))  # with holds
        room = max(0, caps().frames - planned)
        budget = min(room, snapshot.spacing_budget or snapshot.frames)
        result = spacing.refine(
            ts,
            measure,
            distance,
            threshold=threshold,
            budget=budget,
            per_round=max(1, snapshot.batch_size),
            features=feats,
            can_split=lambda a, b: not across_cut(a, b),
        )
        return Placement(
            "adaptive",
            times=result.ts,
            probe_ts=result.ts,
            probe_distances=result.gaps,
            probe_frames=rendered,
            reason=result.reason,
        )
    raise ValueError(f"spacing {snapshot.spacing!r} needs no probe pass")


def requests_for(frames: Sequence[Any], anchors: dict[int, Any]) -> list[FrameRequest]:
    """Engine requests of stored frames; a shared in-between's anchors are looked up by index in `anchors`.

    The weight is core.timeline.weight_between: where the frame's t sits between its anchors' t.
    """
    out = []
    for frame in frames:
        request = request_of(frame)
        if frame.start_step and frame.anchor_a is not None and frame.anchor_b is not None:
            left, right = anchors[frame.anchor_a], anchors[frame.anchor_b]
            weight = weight_between(frame.t, left.t, right.t)
            start = SharedStart(request_of(left), request_of(right), weight, frame.start_step)
            request = replace(request, start=start)
        out.append(request)
    return out
