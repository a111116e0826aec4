"""Score a batch's frames right after it is decoded (images in memory) and keep the scores by frame key.

A frame key's scores are computed once per scorer: reused frames keep theirs and are never re-scored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from infra.config import get_settings
from infra.db import new_session
from infra.tables import FrameScore

log = logging.getLogger(__name__)

_scorers: dict[tuple[int, tuple[str, ...], str, Any], list[Any]] = {}


def scorers_for(engine: Any) -> list[Any]:
    """The configured scorers for this engine's model, built once per engine and configuration (a process
    whose settings change, like a test session, gets the scorers it asks for, not the first ones built)."""
    from core.registry import layer_probe_record, model_revision
    from engine.layer_features import BlockChoice
    from engine.scorers import build_scorers

    settings = get_settings()
    folder = Path(engine.folder) if getattr(engine, "folder", None) else None
    ships_clip = folder is not None and (folder / "clip" / "config.json").is_file()
    names = settings.scorer_names(ships_clip)
    # The U-Net block the layer probe recorded for these weights, read each batch so a re-probe
    # (`python -m bench.layer_probe --record`) takes effect without restarting the worker.
    choice = None
    if "unet" in names:
        models_dir = settings.models_folder
        record = layer_probe_record(engine.model_name, models_dir, settings.data_dir)
        choice = BlockChoice.load(record, model_revision(engine.model_name, models_dir))
    key = (id(engine), tuple(names), settings.scorer_clip, choice)
    if key not in _scorers:
        _scorers[key] = build_scorers(names, engine.pipe, folder, settings.scorer_clip, choice)
        log.info("scoring frames of %s with %s", engine.model_name, [s.name for s in _scorers[key]])
    return _scorers[key]


@dataclass(frozen=True)
class ScoreRow:
    """One frame's values from one scorer, computed and not stored yet."""

    scorer: str
    frame_key: str
    values: Any  # engine.scorers.FrameScoreValues


def score_frames(
    engine: Any, images: Sequence[Any], keys: Sequence[str], prompts: Sequence[tuple[str, str]]
) -> list[ScoreRow]:
    """The scores of the frames not scored yet (per scorer): the model work of scoring, nothing stored.

    A worker runs this on its main thread, between two batches' denoising, and stores the rows on its
    second stage: torch work on two threads at once would oversubscribe the cores torch already uses."""
    scorers = scorers_for(engine)
    with new_session() as db:  # one read for every scorer: this runs between two batches' denoising
        done = set(
            db.execute(
                select(FrameScore.scorer, FrameScore.frame_key).where(
                    FrameScore.scorer.in_([s.name for s in scorers]), FrameScore.frame_key.in_(keys)
                )
            ).tuples()
        )
    # One row per key: a batch may hold one key several times (holds, a cut's frames); two rows of one
    # key would fail the commit and lose the scores of the whole batch
    first = {key: i for i, key in reversed(list(enumerate(keys)))}
    rows: list[ScoreRow] = []
    for scorer in scorers:
        todo = sorted(i for key, i in first.items() if (scorer.name, key) not in done)
        if not todo:
            continue
        values = scorer.score([images[i] for i in todo], [prompts[i] for i in todo])
        rows += [ScoreRow(scorer.name, keys[i], value) for i, value in zip(todo, values, strict=True)]
    return rows


def store_scores(rows: Sequence[ScoreRow]) -> int:
    """Keep computed scores, one commit per scorer; returns how many rows were added."""
    added = 0
    for scorer in dict.fromkeys(row.scorer for row in rows):
        mine = [row for row in rows if row.scorer == scorer]
        with new_session() as db:
            for row in mine:
                db.add(
                    FrameScore(
                        frame_key=row.frame_key,
                        scorer=scorer,
                        embedding=row.values.embedding.astype("<f4").tobytes(),
                        sim_a=row.values.sim_a,
                        sim_b=row.values.sim_b,
                    )
                )
            try:
                db.commit()
                added += len(mine)
            except IntegrityError:  # another worker scored the same frame meanwhile: theirs is as good
                db.rollback()
    return added


def score_and_store(
    engine: Any, images: Sequence[Any], keys: Sequence[str], prompts: Sequence[tuple[str, str]]
) -> int:
    """Score the frames not scored yet (per scorer) and store the rows; returns how many rows were added."""
    return store_scores(score_frames(engine, images, keys, prompts))
