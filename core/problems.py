"""Problems of a transition: the confusion map's per-frame flags grouped into things a person fixes.

A flag says "frame 9 is odd"; a problem says "between #9 and #10 the picture jumps: insert at t = 0.41".
Pure Python (the web app groups stored scores without torch). One problem per:

- jump: a flagged pair (#i, #i+1). severity = the pair's share of the whole path (sum of adjacent
  changes), so a jump carrying 60 % of the change outranks one carrying 30 %. t = the midpoint of the two
  frames' t: where a bridge keyframe or more frames go.
- plateau: a run #a-#b of frames that do not change. severity = the run's share of the timeline's
  frames x 0.5, and x 0.25 more when the run touches the first or the last frame (an endpoint resting on
  its own prompt is a hold, not a fault). A plateau is usually the other side of a jump, which ranks first.
- backwards: consecutive frames whose progress drops. severity = the largest drop (progress units).
- neither: consecutive frames that match neither prompt. severity = the run's share of the frames x 0.5.

Problems come best (most severe) first; ties keep the order jump, backwards, neither, plateau, then t.
Severity is in [0, 1] for every kind, so a list mixes kinds without one kind always winning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.confusion import BACKWARDS, JUMP, KINDS, NEITHER, PLATEAU, Flag

__all__ = ["BACKWARDS", "JUMP", "NEITHER", "PLATEAU", "Problem", "group", "worst"]

#: A run touching the first or the last frame counts this much of a run in the middle.
ENDPOINT_WEIGHT = 0.25
#: Plateaus and "matches neither" runs weigh half their share of the frames (a jump's share is of the path).
RUN_WEIGHT = 0.5


class ScoredFrame(Protocol):
    """What grouping needs of a frame (core.scores.FrameShape has it)."""

    @property
    def index(self) -> int: ...
    @property
    def t(self) -> float: ...
    @property
    def segment(self) -> int: ...
    @property
    def progress(self) -> float | None: ...
    @property
    def change(self) -> float | None: ...
    @property
    def flags(self) -> Sequence[Flag]: ...


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a stretch of the transition, and where a fix goes."""

    id: str  # stable for the same frames: "jump-9-10", "plateau-0-7"
    kind: str  # core.confusion.KINDS
    frames: tuple[int, int]  # first and last frame index involved
    t: float  # where a fix goes (a jump: the midpoint of its two frames' t)
    t_range: tuple[float, float]  # the stretch it covers, in t
    severity: float  # in [0, 1]; higher is worse
    message: str
    segment: int  # the segment `t` falls in

    def overlaps(self, low: float, high: float) -> bool:
        return self.t_range[0] <= high and low <= self.t_range[1]


def _runs(frames: Sequence[ScoredFrame], kind: str) -> list[list[ScoredFrame]]:
    """Consecutive frames (by index) flagged `kind`."""
    runs: list[list[ScoredFrame]] = []
    for f in frames:
        if not any(flag.kind == kind for flag in f.flags):
            continue
        if runs and runs[-1][-1].index == f.index - 1:
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


def _segment_at(frames: Sequence[ScoredFrame], t: float) -> int:
    before = [f for f in frames if f.t <= t]
    return before[-1].segment if before else (frames[0].segment if frames else 0)


def _problem(
    ordered: Sequence[ScoredFrame],
    kind: str,
    frames: tuple[int, int],
    t: float,
    t_range: tuple[float, float],
    severity: float,
    message: str,
) -> Problem:
    return Problem(
        id=f"{kind}-{frames[0]}-{frames[1]}",
        kind=kind,
        frames=frames,
        t=t,
        t_range=t_range,
        severity=severity,
        message=message,
        segment=_segment_at(ordered, t),
    )


def group(frames: Sequence[ScoredFrame]) -> list[Problem]:
    """The problems of a render's frames (each frame with its flags), most severe first."""
    ordered = sorted(frames, key=lambda f: f.index)
    if not ordered:
        return []
    n = len(ordered)
    first, last = ordered[0].index, ordered[-1].index
    changes = [f.change for f in ordered if f.change is not None and math.isfinite(f.change)]
    total = math.fsum(changes)
    by_index = {f.index: f for f in ordered}
    found: list[Problem] = []

    for f in ordered:
        if not any(flag.kind == JUMP for flag in f.flags):
            continue
        after = by_index.get(f.index + 1)
        if after is None or f.change is None or total <= 0:
            continue
        share = f.change / total
        t = (f.t + after.t) / 2
        message = (
            f"jump between #{f.index} and #{after.index}: {share * 100:.0f} % of the whole change; "
            f"a keyframe or more frames at t = {t:.3f} would bridge it"
        )
        found.append(
            _problem(ordered, JUMP, (f.index, after.index), t, (f.t, after.t), min(1.0, share), message)
        )

    for run in _runs(ordered, BACKWARDS):
        start = by_index.get(run[0].index - 1, run[0])
        drops = []
        previous = start.progress
        for f in run:
            if previous is not None and f.progress is not None:
                drops.append(previous - f.progress)
            previous = f.progress if f.progress is not None else previous
        drop = max([d for d in drops if math.isfinite(d)], default=0.0)
        a, b = run[0].index, run[-1].index
        t = (start.t + run[-1].t) / 2
        message = (
            f"goes backwards at #{a}"
            + (f"–#{b}" if b != a else "")
            + f": progress drops by {drop:.2f}; a keyframe at t = {t:.3f} could hold the direction"
        )
        severity = min(1.0, max(0.0, drop))
        found.append(_problem(ordered, BACKWARDS, (a, b), t, (start.t, run[-1].t), severity, message))

    for kind in (NEITHER, PLATEAU):
        for run in _runs(ordered, kind):
            a, b = run[0].index, run[-1].index
            touches_end = a == first or b == last
            weight = RUN_WEIGHT * (ENDPOINT_WEIGHT if touches_end else 1.0)
            severity = min(1.0, len(run) / n * weight)
            t = (run[0].t + run[-1].t) / 2
            if kind == PLATEAU:
                where = "the start holds" if a == first else "the end holds" if b == last else "stuck"
                message = f"nothing changes for {len(run)} frames (#{a}–#{b}, {where}); it changes elsewhere"
            else:
                message = (
                    f"#{a}"
                    + (f"–#{b}" if b != a else "")
                    + f" match neither prompt; a keyframe at t = {t:.3f} could say what should be there"
                )
            found.append(_problem(ordered, kind, (a, b), t, (run[0].t, run[-1].t), severity, message))

    rank = {kind: i for i, kind in enumerate(KINDS)}
    return sorted(found, key=lambda p: (-p.severity, rank[p.kind], p.t))


def worst(problems: Sequence[Problem]) -> float:
    """The severity of the worst problem (0 when there is none): what the autopilot drives down."""
    return max((p.severity for p in problems), default=0.0)
