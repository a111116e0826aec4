"""Neighbour reuse (issue 20 §2): a shared in-between reuses its neighbours' deep features at late steps.

In a transition, adjacent frames share the noise and nearly the same condition, and a shared in-between
(trajectory sharing) even starts from the slerp of its two anchors' latents. From step
core.params.neighbour_reuse_step on, an in-between runs only the U-Net's shallow path (engine/deepcache.py),
fed with the blend, by its weight between them, of the deep features its two anchors computed at the same
step. Anchors are rendered in full: in the same batch (their features are taken in the same step), kept
from an earlier batch (a bounded store on the engine), or, when neither, rendered beside the batch to the
last step. So a frame's pixels depend on its own inputs only, as its frame key says.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch

#: The store's bound: one anchor-step of SD 1.5 at 512 x 512 holds 2 x 640 x 64 x 64 halves (10 MB).
STORE_BYTES = 512 * 2**20

#: An anchor's deep features at one step: (unconditional rows or None when unguided, conditional rows).
Features = tuple[torch.Tensor | None, torch.Tensor]


@dataclass(frozen=True)
class Donors:
    """An in-between's two anchors and where it sits between them (0: anchor_a, 1: anchor_b)."""

    anchor_a: Hashable
    anchor_b: Hashable
    weight: float


@dataclass
class Reuse:
    """A group of in-betweens that runs the shallow path from `step` on, frame j fed by donors[j]."""

    step: int
    donors: Sequence[Donors]
    lookup: Callable[[Hashable, int], Features]

    def deep(self, step: int, guided: bool) -> torch.Tensor:
        """The deep features of the group's rows at `step`: [unconditional..., conditional...] when guided."""
        parts: list[list[torch.Tensor]] = [[], []]
        for donors in self.donors:
            (ua, ca), (ub, cb) = self.lookup(donors.anchor_a, step), self.lookup(donors.anchor_b, step)
            parts[1].append(torch.lerp(ca, cb, donors.weight))
            if guided:
                if ua is None or ub is None:
                    raise RuntimeError(f"neighbour reuse: an anchor has no unconditional features at {step}")
                parts[0].append(torch.lerp(ua, ub, donors.weight))
        return torch.stack([*parts[0], *parts[1]])


def split_rows(features: torch.Tensor, frames: int, guided: bool, one_uncond: bool) -> list[Features]:
    """A group's rows of one call's deep features, per frame: (unconditional, conditional)."""
    cond = features[features.shape[0] - frames :]
    if not guided:
        return [(None, c) for c in cond]
    uncond = features[: features.shape[0] - frames]
    return [(uncond[0 if one_uncond else j], c) for j, c in enumerate(cond)]


class FeatureStore:
    """Anchors' deep features by (settings, frame, step), least recently used first out, bounded in bytes.

    Safe to share between threads; a batch copies what it needs out at planning, so an eviction later
    cannot take an anchor's features from under it.
    """

    def __init__(self, limit: int = STORE_BYTES) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple[str, Hashable, int], Features] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def _size(features: Features) -> int:
        return sum(t.numel() * t.element_size() for t in features if t is not None)

    def put(self, settings: str, frame: Hashable, step: int, features: Features) -> None:
        kept = tuple(t.clone() if t is not None else None for t in features)
        with self._lock:
            old = self._items.pop((settings, frame, step), None)
            if old is not None:
                self._bytes -= self._size(old)
            self._items[(settings, frame, step)] = kept  # type: ignore[assignment]
            self._bytes += self._size(kept)  # type: ignore[arg-type]
            while self._bytes > self.limit and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= self._size(dropped)

    def get_all(self, settings: str, frame: Hashable, steps: range) -> dict[int, Features] | None:
        """Every step of `steps` for `frame`, or None when any is missing."""
        with self._lock:
            found = {}
            for step in steps:
                features = self._items.get((settings, frame, step))
                if features is None:
                    return None
                self._items.move_to_end((settings, frame, step))
                found[step] = features
            return found
