"""Ranking suggestions by the image model itself: a cheap probe of each, scored by how well it bridges.

Each candidate is rendered once as a keyframe would show it (its own prompt, the transition's seed, few
steps, small), next to probes of the two prompts it should bridge (same settings). A scorer from
engine/scorers.py embeds the three pictures; with d the scorer's distance:

- progress m = d(A, S) / (d(A, S) + d(S, B)): where S sits between A (0) and B (1);
- detour = (d(A, S) + d(S, B)) / d(A, B): 1 when S lies on the way, more when it wanders off;
- fit at a slot u (the suggestion's place in the segment, 0..1) = 1 - 2|m - u|, at least 0;
- score = (fit + min(1, 1 / detour)) / 2, in [0, 1]: near its position, small jumps on both sides.

Slots are the positions the suggestions will get (evenly spaced, or all at one flagged frame's t); each
slot takes the unassigned candidate that scores best there (greedy over all pairs), so a candidate that
looks early lands early. The pure math is torch-free; `rank_suggestions` drives the engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.scores import distance
from engine.suggesters.parse import Candidate


@dataclass(frozen=True)
class Measure:
    """Where a probe sits between its two prompts' probes."""

    progress: float
    detour: float


def measure(d_a: float, d_b: float, d_ab: float) -> Measure:
    d_a, d_b = max(0.0, d_a), max(0.0, d_b)
    total = d_a + d_b
    progress = d_a / total if total > 1e-9 else 0.5
    detour = total / d_ab if d_ab > 1e-9 else 1.0 + total
    return Measure(progress, detour)


def slot_score(m: Measure, u: float) -> float:
    fit = max(0.0, 1.0 - 2.0 * abs(m.progress - u))
    bridge = min(1.0, 1.0 / m.detour) if m.detour > 0 else 1.0
    value = 0.5 * fit + 0.5 * bridge
    return value if math.isfinite(value) else 0.0


def assign(measures: Sequence[Measure], slots: Sequence[float]) -> list[tuple[int, int, float]]:
    """(candidate, slot, score) pairs: greedily the best-scoring pair first, each used once."""
    pairs = sorted(
        ((slot_score(m, u), c, s) for c, m in enumerate(measures) for s, u in enumerate(slots)),
        key=lambda p: (-p[0], p[2], p[1]),
    )
    used_c: set[int] = set()
    used_s: set[int] = set()
    out: list[tuple[int, int, float]] = []
    for score, c, s in pairs:
        if c in used_c or s in used_s:
            continue
        used_c.add(c)
        used_s.add(s)
        out.append((c, s, score))
    return out


@dataclass(frozen=True)
class Slot:
    position: float  # on the transition's timeline
    local: float  # inside the segment being bridged, 0..1


@dataclass
class Ranked:
    prompt: str
    position: float
    score: float
    progress: float
    detour: float
    source: str = "llm"
    original: str | None = None
    image: Any = field(default=None, repr=False)


def ranked(
    candidates: Sequence[Candidate], measures: Sequence[Measure], images: Sequence[Any], slots: Sequence[Slot]
) -> list[Ranked]:
    """The assignment of candidates to slots, best first."""
    out = []
    for c, s, score in assign(measures, [slot.local for slot in slots]):
        cand = candidates[c]
        out.append(
            Ranked(
                prompt=cand.prompt,
                position=slots[s].position,
                score=round(score, 4),
                progress=round(measures[c].progress, 4),
                detour=round(measures[c].detour, 4),
                source=cand.source,
                original=cand.original,
                image=images[c],
            )
        )
    out.sort(key=lambda r: (-r.score, r.position))
    return out


def rank_suggestions(
    engine: Any,
    scorer: Any,
    params: Any,
    start: str,
    end: str,
    candidates: Sequence[Candidate],
    slots: Sequence[Slot],
    *,
    batch_size: int = 3,
    on_update: Callable[[list[Ranked]], None] | None = None,
) -> list[Ranked]:
    """Probe `candidates` with `engine` (PixelSettings `params`, few steps) and rank them for `slots`.

    on_update gets the ranking so far after each batch of probes, so a caller can show it growing.
    """
    from engine.pipeline import FrameRequest

    def probe(prompts: Sequence[str]) -> tuple[list[Any], list[Any]]:
        images = engine.render(params, [FrameRequest(p, p, 0.0) for p in prompts])
        values = scorer.score(images, [(start, end)] * len(images))
        return images, [v.embedding for v in values]

    _, (emb_a, emb_b) = probe([start, end])
    d_ab = distance(scorer.name, emb_a, emb_b)
    measures: list[Measure] = []
    images: list[Any] = []
    done: list[Candidate] = []
    result: list[Ranked] = []
    for i in range(0, len(candidates), max(1, batch_size)):
        batch = list(candidates[i : i + batch_size])
        batch_images, embeddings = probe([c.prompt for c in batch])
        for cand, image, emb in zip(batch, batch_images, embeddings, strict=True):
            measures.append(
                measure(distance(scorer.name, emb_a, emb), distance(scorer.name, emb, emb_b), d_ab)
            )
            images.append(image)
            done.append(cand)
        result = ranked(done, measures, images, slots)
        if on_update is not None:
            on_update(result)
    return result
