"""Metrics of a whole transition, computed from per-frame scores ordered by t.

Pure Python on purpose: the web app computes these from stored scores, and it must not pull in torch.
The definitions follow the papers the numbers are compared with: smoothness (1 - Gini, AID), PPL and
PDV (DiffMorpher), ISTD (Smooth Diffusion) and InterpScore (the latent-space interpolation blog).
Empty inputs give neutral values instead of raising, so a transition with few rendered frames still shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

#: A segment whose end frames differ by less than this in (s_b - s_a) is treated as degenerate.
PROGRESS_EPS = 1e-3


def _norm(v: Sequence[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in v))


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """cos(a, b), clipped to [-1, 1] so that rounding never makes a distance negative."""
    if len(a) != len(b):
        raise ValueError(f"vectors differ in length: {len(a)} and {len(b)}")
    na, nb = _norm(a), _norm(b)
    if na == 0.0 or nb == 0.0:
        raise ValueError("cosine similarity is undefined for a zero vector")
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return min(1.0, max(-1.0, dot / (na * nb)))


def cosine_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """1 - cos(a, b): 0 for the same direction, 2 for opposite ones."""
    return 1.0 - cosine_similarity(a, b)


def adjacent_distances(embeddings: Sequence[Sequence[float]], metric: str = "cosine") -> list[float]:
    """Distance between frame i and frame i+1 for every neighbouring pair ("cosine" or "l2")."""
    if metric == "cosine":
        dist = cosine_distance
    elif metric == "l2":

        def dist(a: Sequence[float], b: Sequence[float]) -> float:
            if len(a) != len(b):
                raise ValueError(f"vectors differ in length: {len(a)} and {len(b)}")
            return math.dist(a, b)

    else:
        raise ValueError(f"unknown metric {metric!r}; use 'cosine' or 'l2'")
    return [dist(a, b) for a, b in zip(embeddings, embeddings[1:], strict=False)]


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def gini(values: Sequence[float]) -> float:
    """Population Gini coefficient of non-negative values: 0 when all are equal, (n-1)/n when one holds all.

    Mean absolute difference over all ordered pairs divided by twice the mean, computed from the sorted
    values as sum_k x_(k) (2k - n - 1) / (n sum x); symmetric terms cancel exactly, so equal values give 0.
    0 for an empty or all-zero input (nothing is unevenly spread).
    """
    if any(v < 0 for v in values):
        raise ValueError("gini is defined for non-negative values only")
    n = len(values)
    total = math.fsum(values)
    if n == 0 or total == 0.0:
        return 0.0
    ordered = sorted(values)
    spread = math.fsum(x * (2 * k - n - 1) for k, x in enumerate(ordered, start=1))
    return max(0.0, spread / (n * total))


def smoothness(distances: Sequence[float]) -> float:
    """1 - Gini of the adjacent distances (AID): 1 when every step changes the image equally."""
    return 1.0 - gini(distances)


def ppl(distances: Sequence[float]) -> float:
    """Perceptual path length: the sum of adjacent distances (how far the transition travels)."""
    return math.fsum(distances)


def consistency(distances: Sequence[float]) -> float:
    """Mean adjacent distance (the mean jump); 0 for no distances."""
    return _mean(distances)


def max_jump(distances: Sequence[float]) -> float:
    """The largest adjacent distance; 0 for no distances."""
    return max(distances, default=0.0)


def pdv(distances: Sequence[float]) -> float:
    """Perceptual distance variance (DiffMorpher): population variance of adjacent distances; 0 if empty."""
    if not distances:
        return 0.0
    m = _mean(distances)
    return math.fsum((d - m) ** 2 for d in distances) / len(distances)


def istd(pixel_l2_distances: Sequence[float]) -> float:
    """Smooth Diffusion's ISTD: population standard deviation of adjacent pixel L2 distances."""
    return math.sqrt(pdv(pixel_l2_distances))


def segment_progress(
    sim_a: Sequence[float], sim_b: Sequence[float], eps: float = PROGRESS_EPS
) -> list[float]:
    """Semantic progress of each frame of one segment from a (0) to b (1), from its similarities.

    d_i = s_b_i - s_a_i says how much more a frame looks like b than like a. Raw d is biased (one prompt
    may score higher for every image), so it is rescaled to the segment's own end frames:
    p_i = (d_i - d_0) / (d_last - d_0); the first frame is exactly 0 and the last exactly 1. Values are
    not clamped: below 0 or above 1 means a frame overshoots a keyframe, which is worth showing.
    When |d_last - d_0| <= eps the end frames are indistinguishable (same prompt, or the image ignores
    the prompts) and rescaling would amplify noise, so the fallback is clamp(0.5 + d_i / 2, 0, 1):
    cosine differences lie in [-2, 2], and a frame leaning neither way sits at 0.5.
    """
    if len(sim_a) != len(sim_b):
        raise ValueError(f"sim_a and sim_b differ in length: {len(sim_a)} and {len(sim_b)}")
    d = [sb - sa for sa, sb in zip(sim_a, sim_b, strict=True)]
    if not d:
        return []
    span = d[-1] - d[0]
    if abs(span) <= eps:
        return [min(1.0, max(0.0, 0.5 + di / 2.0)) for di in d]
    # `or 0.0` turns -0.0 (from 0 / a negative span) into 0.0 for display.
    return [((di - d[0]) / span) or 0.0 for di in d]


def progress(sim_a: Sequence[float], sim_b: Sequence[float]) -> list[float]:
    """Progress of a segment's frames between its bracketing prompts; see `segment_progress`."""
    return segment_progress(sim_a, sim_b)


def _check_same_length(ts: Sequence[float], values: Sequence[float]) -> None:
    if len(ts) != len(values):
        raise ValueError(f"ts and progress differ in length: {len(ts)} and {len(values)}")


def crossing_t(ts: Sequence[float], progress: Sequence[float]) -> float | None:
    """The first t at which progress reaches 0.5, on straight lines between frames; None if never.

    "Reaches" means from below: the first pair with p_i < 0.5 <= p_{i+1} is interpolated linearly.
    If the first frame is already at or past 0.5 its t is returned.
    """
    _check_same_length(ts, progress)
    if not progress:
        return None
    if progress[0] >= 0.5:
        return ts[0]
    for i in range(len(progress) - 1):
        p0, p1 = progress[i], progress[i + 1]
        if p0 < 0.5 <= p1:
            return ts[i] + (0.5 - p0) / (p1 - p0) * (ts[i + 1] - ts[i])
    return None


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        average = (start + end) / 2 + 1
        for j in range(start, end + 1):
            ranks[order[j]] = average
        start = end + 1
    return ranks


def monotonicity(ts: Sequence[float], progress: Sequence[float]) -> float:
    """Spearman's rho of progress against t: 1 for always forward, -1 for always backward.

    Pearson correlation of average ranks, so ties are handled. Fewer than 2 frames give 1.0 (nothing
    contradicts a forward move, so an unrendered transition raises no alarm); with 2 or more frames and
    no variation in either ranking (e.g. progress constant) there is no trend, which gives 0.0.
    """
    _check_same_length(ts, progress)
    n = len(progress)
    if n < 2:
        return 1.0
    rt, rp = _ranks(ts), _ranks(progress)
    mt, mp = _mean(rt), _mean(rp)
    cov = math.fsum((x - mt) * (y - mp) for x, y in zip(rt, rp, strict=True))
    vt = math.fsum((x - mt) ** 2 for x in rt)
    vp = math.fsum((y - mp) ** 2 for y in rp)
    if vt == 0.0 or vp == 0.0:
        return 0.0
    return min(1.0, max(-1.0, cov / math.sqrt(vt * vp)))


def interp_score(similarities_to_text: Sequence[float]) -> float:
    """InterpScore: the mean over frames of max(100 * cos, 0); a frame pointing away scores 0, not less."""
    return _mean([max(100.0 * s, 0.0) for s in similarities_to_text])


@dataclass(frozen=True)
class Summary:
    """The headline numbers of one transition, as shown next to it and compared between renders."""

    smoothness: float = field(metadata={"doc": "1 - Gini of adjacent distances (AID); 1 is perfectly even"})
    max_jump: float
    mean_jump: float
    ppl: float = field(metadata={"doc": "sum of adjacent distances (DiffMorpher's perceptual path length)"})
    pdv: float = field(metadata={"doc": "variance of adjacent distances (DiffMorpher)"})
    crossing_t: float | None = field(metadata={"doc": "t where progress over the timeline crosses 0.5"})
    monotonicity: float = field(metadata={"doc": "Spearman rho of progress against t"})


def summarize(ts: Sequence[float], distances: Sequence[float], progress: Sequence[float]) -> Summary:
    """Every headline metric from frame times, adjacent distances and per-frame progress."""
    return Summary(
        smoothness=smoothness(distances),
        max_jump=max_jump(distances),
        mean_jump=consistency(distances),
        ppl=ppl(distances),
        pdv=pdv(distances),
        crossing_t=crossing_t(ts, progress),
        monotonicity=monotonicity(ts, progress),
    )
