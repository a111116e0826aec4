"""Confusion detection: which frames of a transition deserve a warning, from scores already stored.

Pure Python on purpose: the web app runs it on stored per-frame scores to badge frames ("#11 jump"),
and it must not pull in torch. Pass every frame of the transition; frames not rendered or not scored yet
carry None, and every rule skips what it cannot know, so a partially rendered transition works.

The rules (thresholds in `Thresholds`):

- jump: frame i's change to the next frame is above jump_ratio x the median change AND is at least
  jump_share of the sum of all changes. The ratio alone fires on noise in a nearly static transition;
  the share alone fires on short transitions. Flagged on frame i (the start of the pair).
- backwards: within one segment, a frame's progress is more than backwards_margin below the progress of
  the previous frame of that segment that has one. Flagged on the later frame. Progress restarts at 0
  at each inner keyframe, so frames of different segments are never compared.
- neither: a frame is no more like a than the segment's last frame (the b end) is, AND no more like b
  than the segment's first frame (the a end) is, each by more than neither_margin:
  sim_a < sim_a(last) - margin and sim_b < sim_b(first) - margin. The end frames' similarity to the
  *other* prompt is the level of "an image that is not this prompt". Comparing with the end frames'
  similarity to their *own* prompt instead would flag every healthy midpoint, which is expected to score
  lower on both. The segment's end frames are its first and last frames by index; if either lacks
  scores the rule is skipped for the segment rather than judged against a guessed baseline.
- plateau: a run of at least plateau_frames frames in which each consecutive pair differs by at most
  plateau_change x the mean change (the step a perfectly even transition would take), i.e. at least
  plateau_frames - 1 small changes in a row. The mean, not the median, is the reference because a
  transition that is stuck for most of its length has a near-zero median. Every frame of the run is
  flagged; runs may cross inner keyframes (the picture still does not change). An unknown change ends
  a run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeGuard

JUMP = "jump"
BACKWARDS = "backwards"
NEITHER = "neither"
PLATEAU = "plateau"
KINDS = (JUMP, BACKWARDS, NEITHER, PLATEAU)


@dataclass(frozen=True)
class Thresholds:
    """When a frame is flagged; see the module docstring for each rule."""

    jump_ratio: float = 3.0  # adjacent change above jump_ratio x the median change ...
    jump_share: float = 0.25  # ... AND at least this share of the whole path (sum of adjacent changes)
    backwards_margin: float = 0.1  # progress drops by more than this between frames of one segment
    neither_margin: float = 0.02  # both similarities below the end frames' similarity to the other prompt
    plateau_frames: int = 6  # at least this many frames in a row that look the same ...
    plateau_change: float = 0.1  # ... each consecutive pair changing at most this fraction of the mean change

    def __post_init__(self) -> None:
        if self.plateau_frames < 2:
            raise ValueError(f"plateau_frames must be at least 2, got {self.plateau_frames}")
        for name in ("jump_ratio", "jump_share", "backwards_margin", "neither_margin", "plateau_change"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


@dataclass(frozen=True)
class Flag:
    """One warning on one frame: its kind and a sentence a person reads."""

    index: int
    kind: str  # "jump" | "backwards" | "neither" | "plateau"
    message: str


@dataclass(frozen=True)
class FrameScore:
    """The stored scores of one frame; None where not known (yet)."""

    index: int
    t: float
    segment: int
    progress: float | None
    change: float | None  # distance to the next frame; None for the last
    sim_a: float | None
    sim_b: float | None


def _finite(x: float | None) -> TypeGuard[float]:
    return x is not None and math.isfinite(x)


def _jumps(frames: Sequence[FrameScore], th: Thresholds) -> list[Flag]:
    changes = [f.change for f in frames if _finite(f.change)]
    if not changes:
        return []
    median = statistics.median(changes)
    total = math.fsum(changes)
    flags = []
    for pos, f in enumerate(frames):
        if not _finite(f.change) or total <= 0.0:
            continue
        share = f.change / total
        if f.change > th.jump_ratio * median and share >= th.jump_share:
            following = frames[pos + 1].index if pos + 1 < len(frames) else f.index + 1
            message = (
                f"jump: {share * 100:.0f} % of the whole change happens between #{f.index} and #{following}"
            )
            flags.append(Flag(f.index, JUMP, message))
    return flags


def _backwards(frames: Sequence[FrameScore], th: Thresholds) -> list[Flag]:
    flags = []
    last: dict[int, float] = {}  # segment -> progress of its latest frame that has one
    for f in frames:
        if not _finite(f.progress):
            continue
        before = last.get(f.segment)
        if before is not None and before - f.progress > th.backwards_margin:
            message = f"goes backwards: progress drops from {before:.2f} to {f.progress:.2f}"
            flags.append(Flag(f.index, BACKWARDS, message))
        last[f.segment] = f.progress
    return flags


def _neither(frames: Sequence[FrameScore], th: Thresholds) -> list[Flag]:
    by_segment: dict[int, list[FrameScore]] = {}
    for f in frames:
        by_segment.setdefault(f.segment, []).append(f)
    flags = []
    for members in by_segment.values():
        first, last = members[0], members[-1]
        if first is last or not _finite(first.sim_b) or not _finite(last.sim_a):
            continue
        floor_a = last.sim_a - th.neither_margin  # how much a b-image looks like a
        floor_b = first.sim_b - th.neither_margin  # how much an a-image looks like b
        for f in members:
            if _finite(f.sim_a) and _finite(f.sim_b) and f.sim_a < floor_a and f.sim_b < floor_b:
                message = (
                    f"matches neither prompt: similarity {f.sim_a:.2f} to a and {f.sim_b:.2f} to b, "
                    f"below the ends' {last.sim_a:.2f} and {first.sim_b:.2f}"
                )
                flags.append(Flag(f.index, NEITHER, message))
    return flags


def _plateaus(frames: Sequence[FrameScore], th: Thresholds) -> list[Flag]:
    changes = [f.change for f in frames if _finite(f.change)]
    if not changes:
        return []
    limit = th.plateau_change * math.fsum(changes) / len(changes)
    flags: list[Flag] = []

    def close(run: list[FrameScore]) -> None:
        if len(run) >= th.plateau_frames:
            message = f"nothing changes for {len(run)} frames (#{run[0].index}–#{run[-1].index})"
            flags.extend(Flag(f.index, PLATEAU, message) for f in run)

    run: list[FrameScore] = []  # frames joined by small changes; the last one's change is still open
    for pos, f in enumerate(frames):
        small = _finite(f.change) and f.change <= limit and pos + 1 < len(frames)
        if small:
            run = run or [f]
            run.append(frames[pos + 1])
        else:
            close(run)
            run = []
    close(run)
    return flags


def detect(frames: Sequence[FrameScore], thresholds: Thresholds = Thresholds()) -> dict[int, list[Flag]]:
    """Flags per frame index (only frames with flags), in the order jump, backwards, neither, plateau."""
    th = thresholds
    ordered = sorted(frames, key=lambda f: f.index)
    indices = [f.index for f in ordered]
    if len(set(indices)) != len(indices):
        raise ValueError("two frames share an index")
    found: dict[int, list[Flag]] = {}
    for rule in (_jumps, _backwards, _neither, _plateaus):
        for flag in rule(ordered, th):
            found.setdefault(flag.index, []).append(flag)
    return {index: found[index] for index in sorted(found)}
