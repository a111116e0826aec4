"""Time on a transition's clock: "0:02.5" <-> seconds, and seconds <-> t through the frames' positions.

Frame i plays at i / fps s. A transition's frames sit at positions t_0 <= t_1 <= ... (spacing, holds), so
the time at which a t is first shown, and the t shown at a time, follow that list (piecewise linear); with
uniform spacing and no holds this is simply time = t x (frames - 1) / fps. Pure Python, like core.timeline.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

_CLOCK = re.compile(r"^\s*(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d*)?|\.\d+)\s*s?\s*$")


def parse_time(text: str | float | int, field: str = "time") -> float:
    """Seconds from "2.5", "2.5s", "0:02.5" or "1:00:02.5" (h:m:s); a ValueError names the field."""
    if isinstance(text, bool):
        raise ValueError(f'{field} must be a time like "0:02.5" or a number of seconds')
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _CLOCK.match(text)
        if not match:
            raise ValueError(f'{field} must be a time like "0:02.5" or a number of seconds (got {text!r})')
        hours, minutes, secs = match.groups()
        if minutes is not None and float(secs) >= 60:
            raise ValueError(f"{field}: seconds must be below 60 after minutes (got {text!r})")
        seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{field} must be a time of 0 s or more (got {text!r})")
    return seconds


def format_time(seconds: float) -> str:
    """0:02.50 style (minutes:seconds with hundredths), hours when needed; a time no clock shows (past a
    million hours, infinite: an error message quoting what a client sent) in seconds."""
    if not math.isfinite(seconds) or seconds > 3.6e9:
        return f"{seconds:g} s"
    seconds = max(0.0, seconds)
    centis = round(seconds * 100)
    minutes, centis = divmod(centis, 6000)
    hours, minutes = divmod(minutes, 60)
    body = f"{minutes:d}:{centis // 100:02d}.{centis % 100:02d}"
    return f"{hours:d}:{minutes:02d}:{centis // 100:02d}.{centis % 100:02d}" if hours else body


@dataclass(frozen=True)
class Clock:
    """A transition's time axis: the positions of its frames in order and its frame rate."""

    ts: tuple[float, ...]
    fps: int

    @classmethod
    def of(cls, ts: Sequence[float], fps: int) -> Clock:
        if len(ts) < 2:
            raise ValueError("a clock needs at least two frames")
        if fps < 1:
            raise ValueError(f"fps must be at least 1 (got {fps})")
        return cls(tuple(float(t) for t in ts), int(fps))

    @property
    def frames(self) -> int:
        return len(self.ts)

    @property
    def duration(self) -> float:
        """How long the frames play: each shows for 1 / fps s."""
        return self.frames / self.fps

    @property
    def last_time(self) -> float:
        """When the last frame starts (the time of t = 1)."""
        return (self.frames - 1) / self.fps

    def seconds_of(self, t: float) -> float:
        """When position t is first shown (between frames: interpolated)."""
        ts = self.ts
        if t <= ts[0]:
            return 0.0
        if t >= ts[-1]:
            return bisect.bisect_left(ts, ts[-1]) / self.fps
        j = bisect.bisect_left(ts, t)  # first frame at or after t
        if ts[j] == t or j == 0:
            return j / self.fps
        frac = (t - ts[j - 1]) / (ts[j] - ts[j - 1])
        return (j - 1 + frac) / self.fps

    def t_at(self, seconds: float) -> float:
        """The position shown at a time (between frames: interpolated), clamped to the clock."""
        x = min(max(seconds * self.fps, 0.0), self.frames - 1.0)
        i = min(int(math.floor(x)), self.frames - 2)
        frac = x - i
        return self.ts[i] + (self.ts[i + 1] - self.ts[i]) * frac

    def frame_at(self, seconds: float) -> int:
        """The frame playing at a time."""
        return min(self.frames - 1, max(0, int(math.floor(seconds * self.fps + 1e-9))))
