"""MoCE (sequential concept introduction): the switch step found by binary search. Pure functions.

A prompt that combines two concepts the model mixes up ("a boat in the desert") loses one of them.
MoCE denoises the first N steps with the easily lost concept A alone, then the rest with the full
prompt. A larger N favours A. The Multi-Concept Disparity of the result M is

    D(N) = S(M, A) - S(M, B),   S(M, X) = max(CLIPScore(M, X), CLIPScore(M, description of X))

and N is found by binary search on D: too much A (D > threshold) -> fewer A steps; too little -> more.
The search stops when |D| is under the threshold or the probe budget is spent; it keeps the probe with
the smallest |D|. With D monotone in N it needs at most floor(log2(steps + 1)) + 1 probes (the steps + 1
candidates 0..steps), which is ceil(log2(steps)) for most step counts (25 steps: 5 probes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def clip_score(cosine: float) -> float:
    """CLIPScore as the MoCE and InterpScore papers use it: 100 x cosine, floored at 0."""
    return max(100.0 * cosine, 0.0)


def concept_score(cosines: list[float]) -> float:
    """S(M, X): the best CLIPScore of the image against the concept and its descriptions."""
    return max(clip_score(c) for c in cosines)


@dataclass(frozen=True)
class Probe:
    step: int
    disparity: float
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the probe's thumbnail URL


@dataclass(frozen=True)
class SwitchSearch:
    step: int  # the chosen N
    disparity: float
    trace: list[Probe]
    converged: bool  # |D| under the threshold


def max_probes(steps: int) -> int:
    return math.floor(math.log2(steps + 1)) + 1


def search_switch_step(
    disparity: Callable[[int], Probe | float],
    steps: int,
    threshold: float,
    budget: int | None = None,
) -> SwitchSearch:
    """Binary search of N in [0, steps] on D(N), assumed to grow with N."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    budget = max_probes(steps) if budget is None else budget
    if budget < 1:
        raise ValueError(f"budget must be at least 1 probe, got {budget}")
    low, high = 0, steps
    trace: list[Probe] = []
    seen: dict[int, Probe] = {}
    while len(trace) < budget and low <= high:
        step = (low + high) // 2
        if step in seen:
            break
        result = disparity(step)
        probe = result if isinstance(result, Probe) else Probe(step, float(result))
        seen[step] = probe
        trace.append(probe)
        if abs(probe.disparity) <= threshold:
            break
        if probe.disparity > 0:  # A dominates: introduce it for fewer steps
            high = step - 1
        else:  # B dominates: give A more steps
            low = step + 1
    best = min(trace, key=lambda p: (abs(p.disparity), p.step))
    return SwitchSearch(best.step, best.disparity, trace, abs(best.disparity) <= threshold)
