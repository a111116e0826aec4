"""Odd-one-out triplets: which of three items is least like the other two, judged by a distance.

The rule: the odd item is the one whose summed distance to the other two is largest. It is the same rule
as "the closest pair is the same pair, the item left out is odd" (for items a, b, c the sums differ by
d(a,b) - d(b,c) and so on). Items tied for the largest sum share the credit, so a distance that cannot
tell the three apart scores chance (1/3), never 0 or 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

Triplet = tuple[int, int, int]
Distance = Callable[[int, int], float]
Key = TypeVar("Key")

#: Summed distances closer than this (relative) are a tie.
TIE = 1e-9


def odd_candidates(distance: Distance, triplet: Triplet) -> list[int]:
    """The positions (0, 1, 2) whose summed distance to the other two is largest (several on a tie)."""
    a, b, c = triplet
    ab, ac, bc = distance(a, b), distance(a, c), distance(b, c)
    sums = [ab + ac, ab + bc, ac + bc]
    top = max(sums)
    return [i for i, s in enumerate(sums) if s >= top - TIE * max(1.0, abs(top))]


def accuracy(distance: Distance, triplets: Sequence[Triplet], odd: Sequence[int]) -> float:
    """Share of triplets where the distance picks the odd position people (or the ground truth) picked."""
    if len(triplets) != len(odd):
        raise ValueError(f"{len(triplets)} triplets but {len(odd)} answers")
    if not triplets:
        raise ValueError("no triplets to score")
    credit = 0.0
    for triplet, answer in zip(triplets, odd, strict=True):
        if answer not in (0, 1, 2):
            raise ValueError(f"an odd one is a position 0, 1 or 2, not {answer}")
        candidates = odd_candidates(distance, triplet)
        credit += (answer in candidates) / len(candidates)
    return credit / len(triplets)


def best(scores: Mapping[Key, float]) -> Key:
    """The key with the highest accuracy (the first one listed on a tie)."""
    if not scores:
        raise ValueError("nothing to choose from")
    return max(scores, key=lambda k: scores[k])
