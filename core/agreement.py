"""How much people agree with each other, and with a distance, on a study's answers (docs/studies.md). Pure.

- ratings: Krippendorff's alpha, interval metric: 1 - observed disagreement / disagreement expected by
  chance, over units (renders) rated by at least two people. 1: everyone gives each unit the same rating
  (and units differ); about 0: ratings unrelated to the unit; below 0: systematic disagreement.
- triplets: split-half consistency. People are split at random into two halves; in each half a triplet's
  answer is the half's majority (ties skipped); the halves' agreement is chance-corrected like Cohen's kappa
  ((p_o - p_e) / (1 - p_e), p_e from each half's share of picks per shown position). Averaged over
  SPLITS seeded splits. 1: both halves always pick the same frame; about 0: as often as chance.
- a distance vs people on triplets: the distance's odd one out is the frame left out of the closest pair;
  accuracy = the share of people's answers it matches (chance 1/3). The people's own ceiling is the same
  figure for "the majority of the other people" (leave one out).
- a distance vs people on ratings: Spearman's rho between each render's mean rating and the distance's
  smoothness of the render (core.metrics.smoothness of its adjacent-frame distances).
- marks: a histogram on [0, 1]; a distance vs people: |median mark - t of the distance's biggest change|.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

from core.metrics import _ranks

Unit = TypeVar("Unit", bound=Hashable)  # a rated render, a triplet
Person = TypeVar("Person", bound=Hashable)

#: How many random splits the split-half consistency averages.
SPLITS = 50
CHANCE = 1 / 3


def krippendorff_alpha_interval(units: Mapping[Unit, Sequence[float]]) -> float | None:
    """Alpha over `units` (unit -> the values people gave it); None when it is undefined (fewer than two
    pairable values, or no variation at all)."""
    pairable = [list(v) for v in units.values() if len(v) >= 2]
    values = [x for v in pairable for x in v]
    n = len(values)
    if n < 2:
        return None
    observed = (
        math.fsum(
            math.fsum((a - b) ** 2 for i, a in enumerate(v) for j, b in enumerate(v) if i != j) / (len(v) - 1)
            for v in pairable
        )
        / n
    )
    # Pairs over all values: sum over i != j (a_i - a_j)^2 = 2 n sum (a - mean)^2.
    mean = math.fsum(values) / n
    expected = 2 * n * math.fsum((x - mean) ** 2 for x in values) / (n * (n - 1))
    if expected == 0.0:
        return None
    return 1.0 - observed / expected


def _majority(picks: Sequence[int]) -> int | None:
    counts = Counter(picks).most_common(2)
    if not counts or (len(counts) == 2 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def _kappa(pairs: Sequence[tuple[int, int]]) -> float | None:
    if not pairs:
        return None
    observed = sum(a == b for a, b in pairs) / len(pairs)
    left, right = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(left[k] * right[k] for k in left) / len(pairs) ** 2
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else None
    return (observed - expected) / (1.0 - expected)


def split_half_consistency(
    answers: Mapping[Unit, Mapping[Person, int]], seed: int = 0, splits: int = SPLITS
) -> float | None:
    """`answers`: triplet -> {person: the position (0, 1, 2) picked}. None with fewer than two people or no
    triplet both halves answered without a tie."""
    people = sorted({p for by in answers.values() for p in by}, key=str)
    if len(people) < 2:
        return None
    rng = random.Random(seed)
    kappas = []
    for _ in range(splits):
        shuffled = people[:]
        rng.shuffle(shuffled)
        half = set(shuffled[: len(shuffled) // 2])
        pairs = []
        for by in answers.values():
            a = _majority([pick for p, pick in by.items() if p in half])
            b = _majority([pick for p, pick in by.items() if p not in half])
            if a is not None and b is not None:
                pairs.append((a, b))
        kappa = _kappa(pairs)
        if kappa is not None:
            kappas.append(kappa)
    return math.fsum(kappas) / len(kappas) if kappas else None


def odd_one_out(d01: float, d02: float, d12: float) -> int:
    """The position (0, 1, 2) a distance calls least like the others: the one left out of the closest pair."""
    closest = min((d12, 0), (d02, 1), (d01, 2))  # a tie goes to the lower position, deterministically
    return closest[1]


def triplet_accuracy(
    answers: Sequence[tuple[tuple[int, int, int], int]], distance: Callable[[int, int], float | None]
) -> tuple[float | None, int]:
    """The share of answers (shown frames, position picked) the distance's odd one out matches, and how many
    answers it could judge (a frame without stored scores is skipped)."""
    hits = judged = 0
    for (a, b, c), picked in answers:
        d = (distance(a, b), distance(a, c), distance(b, c))
        if any(x is None for x in d):
            continue
        judged += 1
        hits += odd_one_out(*d) == picked  # type: ignore[arg-type]
    return (hits / judged if judged else None), judged


def leave_one_out_accuracy(answers: Mapping[Unit, Mapping[Person, int]]) -> tuple[float | None, int]:
    """People's ceiling for triplet_accuracy: how often a person picks what the majority of the others
    picked (answers whose others tie or are absent are skipped)."""
    hits = judged = 0
    for by in answers.values():
        for person, pick in by.items():
            others = _majority([p for q, p in by.items() if q != person])
            if others is None:
                continue
            judged += 1
            hits += others == pick
    return (hits / judged if judged else None), judged


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (ties share ranks); None with fewer than 3 pairs or no variation."""
    if len(x) != len(y) or len(x) < 3:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = math.fsum(rx) / len(rx), math.fsum(ry) / len(ry)
    cov = math.fsum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx, vy = math.fsum((a - mx) ** 2 for a in rx), math.fsum((b - my) ** 2 for b in ry)
    if vx == 0.0 or vy == 0.0:
        return None
    return cov / math.sqrt(vx * vy)


def histogram(values: Sequence[float], bins: int = 20) -> list[int]:
    """Counts of values in [0, 1] in `bins` equal bins (1.0 falls in the last)."""
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    return counts


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


__all__ = [
    "CHANCE",
    "histogram",
    "krippendorff_alpha_interval",
    "leave_one_out_accuracy",
    "median",
    "odd_one_out",
    "spearman",
    "split_half_consistency",
    "triplet_accuracy",
]
