"""Every distance Segue has between two frames of a render, from what the scorers stored (docs/studies.md).

The interface a study's results read (and the layer probe can feed): `render_distances(db, render)` gives,
per distance name, a function (frame index, frame index) -> distance or None (a frame without scores).

- `clip`, `unet`, `ssim`: the confusion map's scorers (worker/scoring.py stores one row per frame key and
  scorer in frame_scores; core.scores.distance: cosine, or 1 - SSIM);
- `pixels`: RMS difference of the ssim scorer's grey thumbnails (0-1), the pixel baseline;
- each U-Net block: a scorer stored under the name `unet/<block>@t<t>` (core/block_readings.py; stored by
  worker/block_features.py when a study asks) becomes one more row, cosine distance, in U-Net order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.block_readings import sort_key
from core.scores import distance
from infra.tables import FrameScore, Render
from services.scores import PREFERENCE, stored_scores

#: A distance between two frames of one render, by frame index; None when either frame has no scores.
FrameDistance = Callable[[int, int], float | None]
#: A per-block U-Net feature is stored as the scorer `unet/<block>`.
BLOCK_PREFIX = "unet/"
PIXELS = "pixels"
#: The order rows are shown in: the map's scorers, the pixel baseline, then U-Net blocks in U-Net order.
ORDER = (*PREFERENCE, PIXELS)


def pixel_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """RMS difference of two equally sized grey thumbnails with values in 0-1."""
    if len(a) != len(b) or not a:
        raise ValueError("pixel distance needs two non-empty thumbnails of the same size")
    return math.sqrt(math.fsum((x - y) ** 2 for x, y in zip(a, b, strict=True)) / len(a))


def _by_index(db: Session, render: Render, scorer: str) -> dict[int, Sequence[float]]:
    done = {f.key: f.index for f in render.frames if f.status == "done"}
    stored = stored_scores(db, scorer, list(done))
    return {done[key]: score.embedding for key, score in stored.items()}


def _measure(embeddings: dict[int, Sequence[float]], metric: Callable[..., float]) -> FrameDistance:
    cache: dict[tuple[int, int], float] = {}

    def measure(a: int, b: int) -> float | None:
        if a not in embeddings or b not in embeddings:
            return None
        pair = (min(a, b), max(a, b))
        if pair not in cache:
            cache[pair] = metric(embeddings[pair[0]], embeddings[pair[1]])
        return cache[pair]

    return measure


def stored_names(db: Session, render: Render) -> list[str]:
    keys = [f.key for f in render.frames if f.status == "done"]
    if not keys:
        return []
    return list(db.scalars(select(FrameScore.scorer).where(FrameScore.frame_key.in_(keys)).distinct()))


def order_names(names: set[str] | list[str]) -> list[str]:
    known = [n for n in ORDER if n in names]
    return known + sorted((n for n in names if n not in ORDER), key=sort_key)


def render_distances(db: Session, render: Render) -> dict[str, FrameDistance]:
    """name -> distance over the render's frames, for every distance whose scores are stored (ORDER)."""
    out: dict[str, FrameDistance] = {}
    for scorer in stored_names(db, render):
        embeddings = _by_index(db, render, scorer)
        out[scorer] = _measure(embeddings, lambda a, b, s=scorer: distance(s, a, b))
        if scorer == "ssim":
            out[PIXELS] = _measure(embeddings, pixel_distance)
    return {name: out[name] for name in order_names(list(out))}


__all__ = ["BLOCK_PREFIX", "PIXELS", "FrameDistance", "order_names", "pixel_distance", "render_distances"]
