"""A render's shape from its stored frame scores: progress, change, flags and the summary. Pure functions.

The worker stores, per frame key and scorer, an embedding and (for text-aware scorers) the frame's
similarity to its two bracketing prompts. Everything shown on the plots is recomputed here from those,
so other thresholds need no re-scoring.

- change of frame i: the scorer's distance between frame i and frame i+1 (cosine distance of embeddings;
  1 - SSIM of the grey thumbnails for `ssim`).
- similarity to prompt a / b: CLIP's text similarity when the scorer has one; otherwise the similarity
  to the frames at the segment's two keyframes (1 - distance), so image-only scorers give progress too.
- progress: per segment, core.metrics.segment_progress of (sim_b - sim_a), 0 at the segment's first
  frame and 1 at the frame on its end keyframe; the summary reads it over the whole timeline as
  (segment + progress) / segments, so one number says where the end prompt takes over.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core import confusion, metrics

TEXT_AWARE = frozenset({"clip"})


@dataclass(frozen=True)
class FrameRef:
    """A planned frame of a render, as the scores need it."""

    index: int
    t: float
    segment: int
    local_t: float
    key: str


@dataclass(frozen=True)
class StoredScore:
    embedding: Sequence[float]
    sim_a: float | None = None
    sim_b: float | None = None

    @classmethod
    def from_bytes(cls, data: bytes, sim_a: float | None, sim_b: float | None) -> StoredScore:
        values = array("f")
        values.frombytes(data)
        return cls(values.tolist(), sim_a, sim_b)


@dataclass(frozen=True)
class FrameShape:
    index: int
    t: float
    segment: int
    progress: float | None
    change: float | None
    sim_a: float | None
    sim_b: float | None
    flags: list[confusion.Flag] = field(default_factory=list)


@dataclass(frozen=True)
class RenderShape:
    scorer: str
    frames: list[FrameShape]
    summary: metrics.Summary | None
    scored: int


def ssim(a: Sequence[float], b: Sequence[float]) -> float:
    """Global structural similarity of two equally sized grey images in [0, 1] (one window)."""
    n = len(a)
    if n != len(b) or n == 0:
        raise ValueError("ssim needs two non-empty images of the same size")
    ma, mb = sum(a) / n, sum(b) / n
    va = sum((x - ma) ** 2 for x in a) / n
    vb = sum((y - mb) ** 2 for y in b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True)) / n
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))


def distance(scorer: str, a: Sequence[float], b: Sequence[float]) -> float:
    if scorer == "ssim":
        return max(0.0, 1.0 - ssim(a, b))
    return metrics.cosine_distance(a, b)


def _segments(frames: Sequence[FrameRef]) -> dict[int, list[FrameRef]]:
    """Each segment's frames plus the frame sitting on its end keyframe (the next segment's first)."""
    segments: dict[int, list[FrameRef]] = {}
    for frame in frames:
        segments.setdefault(frame.segment, []).append(frame)
    for seg, members in segments.items():
        after = segments.get(seg + 1)
        if after and after[0].local_t <= 0.0:
            members.append(after[0])
    return segments


def render_shape(
    frames: Sequence[FrameRef],
    scores: Mapping[str, StoredScore],
    scorer: str,
    thresholds: confusion.Thresholds | None = None,
) -> RenderShape:
    """Progress, change and flags per frame, and the transition's summary, from what is scored so far."""
    ordered = sorted(frames, key=lambda f: f.index)
    got = {f.index: scores.get(f.key) for f in ordered}

    change: dict[int, float | None] = {}
    for left, right in zip(ordered, ordered[1:], strict=False):
        a, b = got[left.index], got[right.index]
        change[left.index] = distance(scorer, a.embedding, b.embedding) if a and b else None

    sims: dict[int, tuple[float | None, float | None]] = {}
    progress: dict[int, float | None] = {f.index: None for f in ordered}
    for seg, members in _segments(ordered).items():
        start, end = got[members[0].index], got[members[-1].index]
        pairs: list[tuple[FrameRef, tuple[float | None, float | None]]] = []
        for m in members:
            s = got[m.index]
            if s is None:
                pair: tuple[float | None, float | None] = (None, None)
            elif scorer in TEXT_AWARE:
                # The frame on the end keyframe was scored against the next segment's prompts: skip it here.
                pair = (s.sim_a, s.sim_b) if m.segment == seg else (None, None)
            else:
                pair = (
                    1 - distance(scorer, s.embedding, start.embedding) if start else None,
                    1 - distance(scorer, s.embedding, end.embedding) if end and len(members) > 1 else None,
                )
            if m.segment == seg:
                sims[m.index] = pair
            pairs.append((m, pair))
        usable = [(m, (a, b)) for m, (a, b) in pairs if a is not None and b is not None]
        if len(usable) >= 2:
            values = metrics.segment_progress([p[0] for _, p in usable], [p[1] for _, p in usable])
            for (m, _), value in zip(usable, values, strict=True):
                if m.segment == seg:
                    progress[m.index] = value

    shapes = [
        FrameShape(
            index=f.index,
            t=f.t,
            segment=f.segment,
            progress=progress[f.index],
            change=change.get(f.index),
            sim_a=sims.get(f.index, (None, None))[0],
            sim_b=sims.get(f.index, (None, None))[1],
        )
        for f in ordered
    ]
    flags = confusion.detect(
        [
            confusion.FrameScore(s.index, s.t, s.segment, s.progress, s.change, s.sim_a, s.sim_b)
            for s in shapes
        ],
        thresholds or confusion.Thresholds(),
    )
    shapes = [FrameShape(**{**s.__dict__, "flags": flags.get(s.index, [])}) for s in shapes]
    return RenderShape(
        scorer=scorer, frames=shapes, summary=_summary(shapes), scored=sum(1 for v in got.values() if v)
    )


def _summary(shapes: Sequence[FrameShape]) -> metrics.Summary | None:
    distances = [s.change for s in shapes if s.change is not None and math.isfinite(s.change)]
    segments = max((s.segment for s in shapes), default=0) + 1
    timeline = [(s.t, (s.segment + s.progress) / segments) for s in shapes if s.progress is not None]
    if not distances and not timeline:
        return None
    return metrics.summarize([t for t, _ in timeline], distances, [p for _, p in timeline])


def noise_std(noise_path: str, noise_t: float, two_seeds: bool) -> float:
    """Expected per-element std of a frame's starting noise (N(0, I) seeds): linear mixing of two
    independent latents shrinks it to sqrt(g^2 + (1 - g)^2) (0.707 at the midpoint); normalized, slerp and
    translate keep 1; a single seed is 1."""
    if not two_seeds or noise_path != "linear":
        return 1.0
    g = min(1.0, max(0.0, noise_t))
    return math.sqrt(g * g + (1 - g) * (1 - g))


def pixel_istd(thumbnails: Sequence[Sequence[float]]) -> float | None:
    """Smooth Diffusion's ISTD on grey thumbnails: std of the adjacent frames' RMS pixel distance (0-255)."""
    if len(thumbnails) < 3:
        return None
    distances = [
        255.0 * math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) / len(a))
        for a, b in zip(thumbnails, thumbnails[1:], strict=False)
    ]
    return metrics.istd(distances)


def transition_interp_score(sims: Sequence[tuple[float | None, float | None]]) -> float | None:
    """The latent-space blog's InterpScore for a transition: each frame against the nearer of its two
    prompts (mean of max(100 cos, 0)), since a transition has no single prompt."""
    best = [max(a, b) for a, b in sims if a is not None and b is not None]
    return metrics.interp_score(best) if best else None
