"""Per-block U-Net readings stored as frame scores: their names, order and labels, and the block x noise grid.

A reading of one U-Net block at one noise level (unconditioned: a frame between two prompts has no single
prompt) is stored in frame_scores under the scorer `unet/<block>@t<t>` (e.g. `unet/up_blocks.1@t500`,
worker/block_features.py). A study's results read each as one more distance (docs/studies.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: The layer probe's noise levels on a 1000-step schedule (the human-alignment study's; docs/layer-probe.md).
TIMESTEPS = (50, 200, 500, 800)
PREFIX = "unet/"
#: Labels of the other distances a study's results show (by their stored scorer name).
LABELS = {"clip": "CLIP", "unet": "U-Net (the map's scorer)", "ssim": "SSIM", "pixels": "pixels"}
#: Heat classes of the grid: triplet accuracy 0-1 in LEVELS steps (CSS heat-0 ... heat-10).
LEVELS = 10

_NAME = re.compile(r"^unet/(?P<block>[A-Za-z_]+(?:\.\d+)?)(?:@t(?P<t>\d+))?$")


def scorer_name(block: str, timestep: int) -> str:
    """The frame score name of `block` read at noise level `timestep` ("unet/up_blocks.1@t500")."""
    return f"{PREFIX}{block}@t{timestep}"


def parse(name: str) -> tuple[str, int | None] | None:
    """(block, noise level or None) of a per-block reading's name; None for any other scorer."""
    found = _NAME.match(name)
    if found is None:
        return None
    return found["block"], int(found["t"]) if found["t"] else None


def block_rank(block: str) -> tuple[int, int, str]:
    """The order a U-Net runs its blocks: down blocks, the mid block, up blocks."""
    kind, _, index = block.partition(".")
    rank = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}.get(kind, 3)
    return rank, int(index) if index.isascii() and index.isdigit() else 0, block


def sort_key(name: str) -> tuple[Any, ...]:
    """Per-block readings in U-Net order, then by noise level; anything else by name after them."""
    reading = parse(name)
    if reading is None:
        return (1, name)
    block, timestep = reading
    return (0, block_rank(block), timestep if timestep is not None else -1)


def label(name: str) -> str:
    """What a person reads for a distance: "U-Net up_blocks.1, t=500", "CLIP"."""
    reading = parse(name)
    if reading is None:
        return LABELS.get(name, name)
    block, timestep = reading
    return f"U-Net {block}" + (f", t={timestep}" if timestep is not None else "")


def grid(rows: Iterable[Mapping[str, Any]], value: str = "triplet_accuracy") -> dict[str, Any] | None:
    """The per-block readings of a study's distance rows as a block x noise level table of `value`:
    {"timesteps": [...], "rows": [{"block", "cells": [{"t", "value", "level", "best"}]}], "best": (block, t)}.
    None when no row is a per-block reading with a noise level."""
    cells: dict[tuple[str, int], float | None] = {}
    for row in rows:
        reading = parse(str(row["name"]))
        if reading is not None and reading[1] is not None:
            cells[(reading[0], reading[1])] = row.get(value)
    if not cells:
        return None
    blocks: Sequence[str] = sorted({b for b, _ in cells}, key=block_rank)
    timesteps = sorted({t for _, t in cells})
    scored = {k: v for k, v in cells.items() if v is not None}
    # Ties go to the first in U-Net order, then the lowest noise level.
    ordered = sorted(scored, key=lambda k: (block_rank(k[0]), k[1]))
    best = max(ordered, key=lambda k: scored[k]) if ordered else None
    return {
        "timesteps": timesteps,
        "best": best,
        "rows": [
            {
                "block": block,
                "cells": [
                    {
                        "t": t,
                        "value": cells.get((block, t)),
                        "level": None
                        if cells.get((block, t)) is None
                        else min(LEVELS, max(0, int(float(cells[(block, t)] or 0.0) * LEVELS))),
                        "best": (block, t) == best,
                    }
                    for t in timesteps
                ],
            }
            for block in blocks
        ],
    }


__all__ = ["LABELS", "PREFIX", "TIMESTEPS", "block_rank", "grid", "label", "parse", "scorer_name", "sort_key"]
