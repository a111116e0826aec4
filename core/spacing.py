"""Where frames sit on the timeline: named easing curves, perceptual re-spacing and adaptive refinement.

Pure Python (no torch, no numpy): the web app plans uniform and eased renders with it, the worker feeds
it the distances a probe pass measured. Every function keeps t = 0 and t = 1 exact.

- A **curve** maps a uniform position u in [0, 1] to t in [0, 1], increasing, with curve(0) = 0 and
  curve(1) = 1. `spaced(n, name)` gives n frame positions.
- **Perceptual** spacing (DiffMorpher's re-spacing): from a probe pass at positions t_0 < ... < t_m and the
  distance between each adjacent pair of probe frames, build the cumulative distance C(t) (piecewise
  linear, C(0) = 0, C(1) = 1) and place frame i at C⁻¹(i / (n - 1)): every frame then sits an equal step
  of cumulative change after the one before. `Warp` is that function; it is also a curve.
- **Beta** spacing (AID's prior): frame i at the Beta(α, β) quantile of i / (n - 1), α and β fitted so the
  Beta CDF follows the probe pass's C(t) (`BetaWarp`).
- **Adaptive** refinement (latentblending's branching, seed travel's gap fill): start from some positions,
  measure the distance of each adjacent pair, and repeatedly bisect the widest gap until no gap exceeds
  a threshold or the budget of added positions is spent. A gap narrower than `min_width` in t is
  never split, so no two frames ever share a t.

The distance is always a parameter (a function of two probe results), so the engine's cheap pixel
distance can be swapped for a scorer's embedding distance without touching this module.
"""

from __future__ import annotations

import bisect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

Curve = Callable[[float], float]
Feature = TypeVar("Feature")


def _uniform(u: float) -> float:
    return u


def _ease_in(u: float) -> float:
    return u * u


def _ease_out(u: float) -> float:
    return 1.0 - (1.0 - u) * (1.0 - u)


def _ease_in_out(u: float) -> float:
    # smoothstep: slow at both ends, fastest in the middle (slope 1.5)
    return u * u * (3.0 - 2.0 * u)


def _sine(u: float) -> float:
    return (1.0 - math.cos(math.pi * u)) / 2.0


#: The named curves; "perceptual" and "adaptive" are measured, not named (see Warp and refine).
CURVES: dict[str, Curve] = {
    "uniform": _uniform,
    "ease_in_out": _ease_in_out,
    "ease_in": _ease_in,
    "ease_out": _ease_out,
    "sine": _sine,
}


def curve(name: str) -> Curve:
    try:
        return CURVES[name]
    except KeyError:
        raise ValueError(
            f"spacing must be one of {', '.join(CURVES)} for a named curve, got {name!r}"
        ) from None


def grid(n: int) -> list[float]:
    """n evenly spaced positions with exact endpoints 0.0 and 1.0."""
    if n < 2:
        raise ValueError(f"frames must be at least 2, got {n}")
    return [0.0 if i == 0 else 1.0 if i == n - 1 else i / (n - 1) for i in range(n)]


def apply(fn: Curve, us: Sequence[float]) -> list[float]:
    """fn over positions, keeping exact endpoints and clamping rounding into [0, 1]."""
    out = []
    for u in us:
        out.append(0.0 if u <= 0.0 else 1.0 if u >= 1.0 else min(1.0, max(0.0, fn(u))))
    return out


def spaced(n: int, name: str = "uniform") -> list[float]:
    """n positions spaced by the named curve; "uniform" is exactly core.timeline.frame_times."""
    return apply(curve(name), grid(n))


def curve_points(fn: Curve, samples: int = 33) -> list[tuple[float, float]]:
    """(u, t) samples of a curve, for plotting it in the UI."""
    return [(u, fn(u)) for u in grid(samples)]


# ---------------------------------------------------------------- perceptual re-spacing


class CumulativeCurve(ABC):
    """A spacing curve made from a cumulative C(t) on [0, 1] and its inverse: calling it maps u to C⁻¹(u)."""

    @abstractmethod
    def forward(self, t: float) -> float: ...

    @abstractmethod
    def inverse(self, u: float) -> float: ...

    def __call__(self, u: float) -> float:
        return self.inverse(u)

    def restricted(self, start: float, end: float) -> Curve:
        """The curve of the stretch [start, end] alone, as a curve on [0, 1] (per-segment spacing)."""
        c0, c1 = self.forward(start), self.forward(end)
        if c1 - c0 <= 1e-12:
            return _uniform

        def local(u: float) -> float:
            t = self.inverse(c0 + u * (c1 - c0))
            return min(1.0, max(0.0, (t - start) / (end - start)))

        return local


@dataclass(frozen=True)
class Warp(CumulativeCurve):
    """The normalised cumulative distance C(t) of a probe pass, and its inverse.

    `ts` are the probe positions (increasing, 0 first and 1 last), `cumulative` C at each (0 ... 1).
    Calling a Warp maps u to C⁻¹(u), so a Warp is a curve: uniform u in, perceptually even t out.
    """

    ts: tuple[float, ...]
    cumulative: tuple[float, ...]

    @classmethod
    def from_distances(cls, ts: Sequence[float], distances: Sequence[float]) -> Warp:
        """distances[i] is the distance between the probe frames at ts[i] and ts[i + 1]."""
        ts = [float(t) for t in ts]
        if len(ts) < 2 or ts[0] != 0.0 or ts[-1] != 1.0:
            raise ValueError("probe positions must start at 0 and end at 1")
        if any(b <= a for a, b in zip(ts, ts[1:], strict=False)):
            raise ValueError("probe positions must increase strictly")
        if len(distances) != len(ts) - 1:
            raise ValueError(
                f"need {len(ts) - 1} distances for {len(ts)} probe positions, got {len(distances)}"
            )
        if any(not math.isfinite(d) or d < 0 for d in distances):
            raise ValueError("distances must be finite and non-negative")
        total = math.fsum(distances)
        if total <= 0.0:
            # Nothing changes anywhere: spend the frames evenly in t.
            return cls(tuple(ts), tuple(ts))
        running, cumulative = 0.0, [0.0]
        for d in distances:
            running += d
            cumulative.append(running / total)
        cumulative[-1] = 1.0
        return cls(tuple(ts), tuple(cumulative))

    def forward(self, t: float) -> float:
        """C(t): the share of the whole change that happens before t."""
        return _interpolate(self.ts, self.cumulative, t)

    def inverse(self, u: float) -> float:
        """C⁻¹(u): where the share u of the change is reached (the first such t on a flat stretch)."""
        if u <= 0.0:
            return 0.0
        if u >= 1.0:
            return 1.0
        j = bisect.bisect_left(self.cumulative, u)
        c0, c1 = self.cumulative[j - 1], self.cumulative[j]
        t0, t1 = self.ts[j - 1], self.ts[j]
        return t0 + (t1 - t0) * (u - c0) / (c1 - c0)


def _interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    j = bisect.bisect_right(xs, x)
    x0, x1, y0, y1 = xs[j - 1], xs[j], ys[j - 1], ys[j]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def perceptual(n: int, ts: Sequence[float], distances: Sequence[float]) -> list[float]:
    """n positions at equal steps of the cumulative probe distance (exact endpoints)."""
    return apply(Warp.from_distances(ts, distances), grid(n))


# ---------------------------------------------------------------- Beta prior (AID)


def beta_cdf(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b): the CDF of Beta(a, b) at x."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The continued fraction converges fast below the mean; above it, I_x(a, b) = 1 - I_(1-x)(b, a).
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(1.0 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float) -> float:
    """Lentz's evaluation of the incomplete beta's continued fraction (Numerical Recipes' betacf)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def beta_quantile(u: float, a: float, b: float) -> float:
    """x with I_x(a, b) = u, by bisection (the CDF is increasing); exact 0 and 1 at the ends."""
    if u <= 0.0:
        return 0.0
    if u >= 1.0:
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2.0
        if beta_cdf(mid, a, b) < u:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


#: The Beta prior's shape parameters are searched on this log-spaced grid (AID's prior stays in it).
BETA_GRID = tuple(round(2 ** (k / 4), 4) for k in range(-8, 18))  # 0.25 ... 19.03, with 0.5, 1, 2, 4


@dataclass(frozen=True)
class BetaWarp(CumulativeCurve):
    """AID's Beta prior as a spacing curve: frame i at the Beta(alpha, beta) quantile of i / (n - 1).

    Fitted to a probe pass: alpha and beta make the Beta CDF closest (least squares at the probe
    positions) to the normalised cumulative distance C(t), so the quantiles spread the measured change
    evenly like perceptual spacing does, with a smooth two-parameter curve instead of a piecewise one.
    alpha = beta = 1 is uniform spacing.
    """

    alpha: float
    beta: float

    @classmethod
    def fit(cls, ts: Sequence[float], distances: Sequence[float]) -> BetaWarp:
        warp = Warp.from_distances(ts, distances)
        points = list(zip(warp.ts[1:-1], warp.cumulative[1:-1], strict=True))
        if not points:
            return cls(1.0, 1.0)

        def error(a: float, b: float) -> float:
            return math.fsum((beta_cdf(t, a, b) - c) ** 2 for t, c in points)

        best = min(((a, b) for a in BETA_GRID for b in BETA_GRID), key=lambda ab: (error(*ab), ab))
        if error(1.0, 1.0) <= error(*best) + 1e-12:
            return cls(1.0, 1.0)
        return cls(*best)

    def forward(self, t: float) -> float:
        return beta_cdf(t, self.alpha, self.beta)

    def inverse(self, u: float) -> float:
        return beta_quantile(u, self.alpha, self.beta)


# ---------------------------------------------------------------- adaptive refinement

#: Two frames closer than this in t are never split further (well above core.timeline.POSITION_TOLERANCE).
MIN_WIDTH = 1e-4


@dataclass
class Refinement:
    """The outcome of `refine`: the final positions and why refinement stopped."""

    ts: list[float]
    gaps: list[float]
    added: int
    reason: str  # "threshold" | "budget" | "unsplittable" (only gaps too narrow or refused remain)
    rounds: int


def refine(
    ts: Sequence[float],
    measure: Callable[[list[float]], list[Feature]],
    distance: Callable[[Feature, Feature], float],
    *,
    threshold: float,
    budget: int,
    min_width: float = MIN_WIDTH,
    per_round: int = 1,
    features: Sequence[Feature] | None = None,
    can_split: Callable[[float, float], bool] | None = None,
) -> Refinement:
    """Bisect the widest gap (by `distance`) until no gap exceeds `threshold` or `budget` is spent.

    measure(positions) -> one feature per position (a probe render, a scorer's embedding...), called once
    per round with that round's new midpoints. `per_round` > 1 bisects the widest few gaps at once, so a
    probe renders them in one batch; the widest are always split first. Gaps narrower than `min_width`
    in t are left alone, so positions stay distinct. `features` may give the features of `ts` already.
    can_split(a, b) False leaves the gap between positions a and b alone (a cut: it never closes).
    """
    positions = sorted(float(t) for t in ts)
    if len(positions) < 2:
        raise ValueError("refinement needs at least two positions")
    if any(b - a <= 0 for a, b in zip(positions, positions[1:], strict=False)):
        raise ValueError("positions must be distinct")
    if budget < 0 or per_round < 1:
        raise ValueError("budget must be >= 0 and per_round >= 1")
    feats: list[Any] = list(features) if features is not None else list(measure(positions))
    if len(feats) != len(positions):
        raise ValueError("measure must return one feature per position")
    gaps = [distance(a, b) for a, b in zip(feats, feats[1:], strict=False)]
    added, rounds = 0, 0
    while True:
        splittable = [
            i
            for i, gap in enumerate(gaps)
            if gap > threshold
            and positions[i + 1] - positions[i] >= 2 * min_width
            and (can_split is None or can_split(positions[i], positions[i + 1]))
        ]
        if not splittable:
            reason = "threshold" if all(g <= threshold for g in gaps) else "unsplittable"
            break
        if added >= budget:
            reason = "budget"
            break
        chosen = sorted(splittable, key=lambda i: (-gaps[i], i))[: min(per_round, budget - added)]
        mids = [(positions[i] + positions[i + 1]) / 2.0 for i in chosen]
        new = list(measure(mids))
        if len(new) != len(mids):
            raise ValueError("measure must return one feature per position")
        rounds += 1
        # Insert from the right so earlier indices stay valid.
        for i, mid, feat in sorted(zip(chosen, mids, new, strict=True), key=lambda x: -x[0]):
            positions.insert(i + 1, mid)
            feats.insert(i + 1, feat)
            gaps[i : i + 1] = [distance(feats[i], feat), distance(feat, feats[i + 2])]
        added += len(mids)
    return Refinement(ts=positions, gaps=gaps, added=added, reason=reason, rounds=rounds)


#: Adaptive refinement splits a gap only when it is this much wider than the average gap.
ADAPTIVE_SLACK = 1.25


def adaptive_threshold(distances: Sequence[float], frames: int, slack: float = ADAPTIVE_SLACK) -> float:
    """slack x the gap an evenly changing transition of `frames` frames has: total / (frames - 1).

    Refining the uniform grid until no gap exceeds this leaves an even transition alone and adds frames
    only where the change is faster than average (by more than the slack).
    """
    if frames < 2:
        raise ValueError("frames must be at least 2")
    return slack * math.fsum(distances) / (frames - 1)


# ---------------------------------------------------------------- audio-driven spacing

#: Silence still moves a little (this share of the mean energy), so positions stay strictly increasing.
AUDIO_FLOOR = 1e-3


def audio_positions(energies: Sequence[float], smooth: float = 0.0) -> list[float]:
    """Frame positions that follow a soundtrack (stable-diffusion-videos' walk, in t).

    energies[i] is the onset energy heard between base frame i and i + 1 (n - 1 values for n frames).
    Position i is the normalised cumulative energy up to frame i, blended toward the uniform grid by
    `smooth` (0: follow the audio, 1: uniform): progress moves on hits and rests in silence.
    """
    if len(energies) < 1:
        raise ValueError("audio spacing needs at least two frames")
    if not 0.0 <= smooth <= 1.0 or not math.isfinite(smooth):
        raise ValueError(f"smooth must be between 0 and 1 (got {smooth:g})")
    clean = [e if math.isfinite(e) and e > 0.0 else 0.0 for e in energies]
    mean = math.fsum(clean) / len(clean)
    floor = AUDIO_FLOOR * mean if mean > 0.0 else 1.0
    steps = [e + floor for e in clean]
    total = math.fsum(steps)
    n = len(steps) + 1
    uniform = grid(n)
    running, out = 0.0, [0.0]
    for i, step in enumerate(steps[:-1], start=1):
        running += step
        out.append((1.0 - smooth) * running / total + smooth * uniform[i])
    out.append(1.0)
    return out


def through(us: Sequence[float], ts: Sequence[float]) -> Curve:
    """The piecewise-linear curve through the points (us[i], ts[i]) (increasing, from (0, 0) to (1, 1))."""
    xs, ys = tuple(float(u) for u in us), tuple(float(t) for t in ts)

    def fn(u: float) -> float:
        return _interpolate(xs, ys, u)

    return fn


def audio_curve(energies: Sequence[float], smooth: float = 0.0) -> Curve:
    """audio_positions as a curve on the base grid, for core.timeline.base_times."""
    positions = audio_positions(energies, smooth)
    return through(grid(len(positions)), positions)
