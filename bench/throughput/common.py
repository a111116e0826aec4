"""Shared by every measurement: settings, the pure helpers, a Run, the log, ratios."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.sse import parse_sse as parse_sse  # re-exported: the bench's tests read it here

REPO = Path(__file__).resolve().parents[2]
START_PROMPT = "a futuristic cityscape, vibrant and detailed"
END_PROMPT = "a cheerful girl in a magical forest"
TERMINAL_EVENTS = ("done", "failed", "cancelled")
PG_ADMIN_URL = os.environ.get("SEGUE_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SEGUE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
#: The share of frames after which the uncovered gap is measured (coarse-to-fine order shows there).
COVERAGE_FRACTION = 0.25

# Targets of issue 11, as measured by this script.
TARGET_END_TO_END = 3.0  # end to end >= 3x the naive loop's frames/s
TARGET_APP_SHARE = 0.90  # the app keeps >= 90 % of the raw engine's frames/s at the same batch
TARGET_SHARING_SAVING = 0.30  # >= 30 % fewer U-Net evaluations per in-between ...
TARGET_SCALING = 1.7  # 2 workers >= 1.7x one


# --------------------------------------------------------------------------------------------------------
# Pure helpers (tests/bench/test_throughput_bench.py)


def pixel_settings(args: argparse.Namespace) -> Any:
    """The picture settings every measurement of one run shares."""
    from core.params import PixelSettings

    return PixelSettings(
        model=args.model,
        seed=args.seed,
        steps=args.steps,
        guidance_scale=args.guidance,
        width=args.size,
        height=args.size,
    )


def frame_ts(frames: int) -> list[float]:
    """The t of each frame on a uniform grid over [0, 1] (one frame: t = 0)."""
    if frames <= 1:
        return [0.0] * max(frames, 0)
    return [i / (frames - 1) for i in range(frames)]


def coverage_count(total: int, fraction: float = COVERAGE_FRACTION) -> int:
    """How many frames make `fraction` of `total` (at least one)."""
    return max(1, math.ceil(fraction * total - 1e-9))


def uncovered_gap(ts: Sequence[float]) -> float:
    """The longest stretch of [0, 1] with no frame in it, given the frames' t (any order).

    The ends count: with frames only at 0.25 and 0.5, [0.5, 1] (0.5) is uncovered.
    """
    if not ts:
        return 1.0
    points = sorted(min(1.0, max(0.0, t)) for t in ts)
    edges = [0.0, *points, 1.0]
    return max(b - a for a, b in zip(edges, edges[1:], strict=False))


def gap_after(arrival_ts: Sequence[float], total: int, fraction: float = COVERAGE_FRACTION) -> float:
    """The largest uncovered gap in t once `fraction` of `total` frames have arrived (in arrival order)."""
    return uncovered_gap(list(arrival_ts)[: coverage_count(total, fraction)])


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline, or None when either is missing or the baseline is 0."""
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else "met" if ok else "not met"


def cell(value: Any) -> str:
    """A table cell: floats to 3 significant digits (whole numbers above 1000), None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value)


def times(value: float | None) -> str:
    """A ratio as '2.41×' (a dash when missing)."""
    return "—" if value is None else f"{value:.2f}×"


def percent(value: float | None) -> str:
    """A share as '89.7 %' (one decimal, so a figure just under a target never prints as the target)."""
    return "—" if value is None else f"{100 * value:.1f} %"


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A Markdown table of `rows` with (key, header) columns; a missing key is a dash."""
    lines = [
        "| " + " | ".join(header for _, header in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(key)) for key, _ in columns) + " |")
    return "\n".join(lines)


def sharing_costs(full_items: float, shared_items: float, frames: int, in_betweens: int) -> dict[str, float]:
    """U-Net evaluations per frame of a full render, per in-between of a shared one, and the saving.

    The anchors of a shared render cost what full frames cost, so what the shared render saves in total,
    spread over its in-betweens, is what each in-between saves.
    """
    per_frame = full_items / frames
    saved = (full_items - shared_items) / in_betweens if in_betweens else 0.0
    return {
        "per_frame_full": per_frame,
        "per_in_between_shared": per_frame - saved,
        "saved_share": saved / per_frame if per_frame else 0.0,
    }


def chunks(items: Sequence[int], size: int) -> list[list[int]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


# --------------------------------------------------------------------------------------------------------
# Measurements


@dataclass
class Run:
    """One render of the frames: when each frame arrived and what it cost."""

    method: str
    batch: int
    frames: int
    seconds: float
    arrivals: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, t)
    unet_items: float | None = None
    threads: str = ""
    images: dict[int, Any] = field(default_factory=dict, repr=False)
    note: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    @property
    def first_frame(self) -> float | None:
        return min(a for a, _ in self.arrivals) if self.arrivals else None

    @property
    def gap(self) -> float | None:
        if not self.arrivals:
            return None
        return gap_after([t for _, t in sorted(self.arrivals, key=lambda a: a[0])], self.frames)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (5 min {five:.2f})"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load()}] {message}", file=sys.stderr, flush=True)


def pixel_gap(a: Any, b: Any) -> float:
    """Mean absolute pixel difference of two images, 0..255."""
    import numpy as np

    x = np.asarray(a.convert("RGB"), dtype=np.float64)
    y = np.asarray(b.convert("RGB"), dtype=np.float64)
    return float(np.abs(x - y).mean())
