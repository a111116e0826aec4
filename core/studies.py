"""Studies (docs/studies.md): which frames a triplet shows, and the order a participant sees items in.

Pure and seeded, so a study's items are the same every time they are made from the same seed.

The triplet sampler draws `count` triplets, each three distinct frames of ONE render (people compare moments
of the same transition, and the stored distances are per frame of a render):

1. the render: in turn, render after render (the study's order), so every render gets count / renders;
2. the three frames: drawn without replacement with probability proportional to each frame's weight.
   `uniform`: every frame weighs 1. `problems`: a frame inside one of the confusion map's problems
   (core/problems.py: jumps, plateaus, backwards, neither) weighs 1 + PROBLEM_BOOST x the worst severity
   it is part of, so triplets lean toward the stretches the metrics call bad, where people's view matters;
3. the order the three are shown in: shuffled (the odd one is not always in the middle);
4. a triplet already drawn (the same three frames in any order) is drawn again, up to RETRIES times, then
   kept (a render of 3 frames has only one triplet).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TASKS = ("rate", "mark", "triplets")
SAMPLERS = ("uniform", "problems")
#: How much a frame inside a problem of severity 1 outweighs a frame in no problem, minus one.
PROBLEM_BOOST = 4.0
RETRIES = 20
#: The answers each kind of item takes (checked by the service; named in its 422s).
RATING_RANGE = (1, 5)


@dataclass(frozen=True)
class StudyRender:
    """A render of a study, as the sampler needs it: its id, its frames' indices, and each frame's weight."""

    render_id: int
    frames: tuple[int, ...]
    #: frame index -> the worst severity (0-1) of a problem it is part of; missing: none.
    problem_severity: Mapping[int, float] | None = None


@dataclass(frozen=True)
class Triplet:
    render_id: int
    frames: tuple[int, int, int]  # in the order they are shown


def frame_weight(severity: float | None, sampler: str) -> float:
    if sampler == "uniform" or not severity:
        return 1.0
    return 1.0 + PROBLEM_BOOST * min(1.0, max(0.0, severity))


def _weighted_three(rng: random.Random, frames: Sequence[int], weights: Sequence[float]) -> list[int]:
    pool, pool_weights, chosen = list(frames), list(weights), []
    for _ in range(3):
        pick = rng.choices(range(len(pool)), weights=pool_weights)[0]
        chosen.append(pool.pop(pick))
        pool_weights.pop(pick)
    return chosen


def sample_triplets(
    renders: Sequence[StudyRender], count: int, seed: int, sampler: str = "uniform"
) -> list[Triplet]:
    """`count` triplets over the renders' frames (module docstring); the same inputs, the same list."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)} (got {sampler!r})")
    usable = [r for r in renders if len(set(r.frames)) >= 3]
    if count <= 0 or not usable:
        return []
    rng = random.Random(seed)
    seen: set[tuple[int, frozenset[int]]] = set()
    out: list[Triplet] = []
    for n in range(count):
        render = usable[n % len(usable)]
        frames = sorted(set(render.frames))
        severity = render.problem_severity or {}
        weights = [frame_weight(severity.get(f), sampler) for f in frames]
        for _attempt in range(RETRIES + 1):
            three = _weighted_three(rng, frames, weights)
            key = (render.render_id, frozenset(three))
            if key not in seen:
                break
        seen.add(key)
        rng.shuffle(three)
        out.append(Triplet(render.render_id, (three[0], three[1], three[2])))
    return out


def participant_order(
    item_ids: Sequence[int], kinds: Sequence[str], seed: int, participant_id: int
) -> list[int]:
    """The order one participant answers the items in: tasks in the order rate, mark, triplets (a rating of
    the whole render comes before its moments are looked at closely); inside a task shuffled per participant
    (seeded by the study's seed and the participant), so no item always comes first."""
    rng = random.Random(f"{seed}:{participant_id}")
    order: list[int] = []
    for task in ("rate", "mark", "triplet"):
        group = [i for i, k in zip(item_ids, kinds, strict=True) if k == task]
        rng.shuffle(group)
        order.extend(group)
    return order


__all__ = [
    "RATING_RANGE",
    "SAMPLERS",
    "TASKS",
    "StudyRender",
    "Triplet",
    "participant_order",
    "sample_triplets",
]
