"""Read each U-Net block for a study's frames and keep the readings as frame scores (docs/studies.md).

For every finished frame of the study's renders (by frame key: a frame shared between renders or studies is
read once), engine/layer_features.LayerFeatures reads every down block, the mid block and every up block at
the layer probe's noise levels (core/block_readings.TIMESTEPS: 50, 200, 500, 800), without text (a frame
between two prompts has no single prompt of its own, as for the confusion map's U-Net scorer), mean-pooled
over space. Each reading is one frame_scores row `unet/<block>@t<t>`; keys read already are skipped.

The job row (infra.tables.StudyBlocks) is claimed under a lease (worker/lease.py `claim_job`): a second copy
of the task takes nothing, only the holder writes progress and readings (in the transaction that checks its
claim), and a worker that dies lets the lease run out so the reaper queues the job again; the frames it read
stay stored and are skipped.
"""

from __future__ import annotations

import io
import logging
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.block_readings import PREFIX, TIMESTEPS, scorer_name
from infra.config import get_settings
from infra.db import new_session
from infra.storage import get_store
from infra.tables import Frame, FrameScore, Render, Study, StudyBlocks, utcnow
from services.jobs import STUDY_BLOCKS
from worker import lease

log = logging.getLogger(__name__)

#: Frames read per U-Net pass (one pass per noise level).
BATCH = 8


def run_study_blocks(job_id: int) -> dict[str, Any]:
    return lease.run_job(STUDY_BLOCKS, job_id, f"study blocks {job_id}", _run, {"readings": 0})


def _frames(db: Any, study: Study) -> dict[str, list[str]]:
    """model -> the distinct keys of the finished frames of the study's renders, in render and frame order."""
    out: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for render_id in study.render_ids:
        render = db.get(Render, render_id)
        if render is None:
            continue
        done = select(Frame.key).where(Frame.render_id == render_id, Frame.status == "done")
        keys = db.scalars(done.order_by(Frame.index))
        for key in keys:
            if key not in seen:
                seen.add(key)
                out[render.model].append(key)
    return out


def _stored(keys: list[str]) -> set[tuple[str, str]]:
    """(frame key, scorer) of the per-block readings stored for these keys."""
    with new_session() as db:
        rows = db.execute(
            select(FrameScore.frame_key, FrameScore.scorer).where(
                FrameScore.frame_key.in_(keys), FrameScore.scorer.startswith(PREFIX)
            )
        ).all()
    return {(key, scorer) for key, scorer in rows}


def _same_size(images: list[Any], keys: list[str]) -> list[tuple[list[Any], list[str]]]:
    """A batch split where the picture size changes (one U-Net pass needs one size)."""
    runs: list[tuple[list[Any], list[str]]] = []
    for image, key in zip(images, keys, strict=True):
        if runs and runs[-1][0][0].size == image.size:
            runs[-1][0].append(image)
            runs[-1][1].append(key)
        else:
            runs.append(([image], [key]))
    return runs


def _run(job_id: int, token: str) -> dict[str, Any]:
    import PIL.Image

    from engine.layer_features import LayerFeatures
    from engine.pipeline import get_engine

    settings = get_settings()
    with new_session() as db:
        # Queued, or running under a lease that ran out (its worker died); a second copy takes nothing.
        claimed = lease.claim_job(
            db, STUDY_BLOCKS, job_id, token, started_at=utcnow(), finished_at=None, error=None, readings=0
        )
        row = db.get(StudyBlocks, job_id)
        study = db.get(Study, row.study_id) if row is not None else None
        if not claimed or study is None:
            return {"readings": 0}
        by_model = _frames(db, study)

    total = sum(len(keys) for keys in by_model.values())
    done = readings = 0
    lease.write_job(STUDY_BLOCKS, job_id, token, frames_total=total, frames_done=0)
    try:
        store = get_store()
        for model, keys in by_model.items():
            engine = get_engine(model, models_dir=settings.models_dir, device=settings.worker_device)
            features = LayerFeatures(engine.pipe)
            names = [scorer_name(block, t) for block in features.blocks for t in TIMESTEPS]
            stored = _stored(keys)
            todo = [key for key in keys if any((key, name) not in stored for name in names)]
            # A picture gone from the store (a wiped store) is left out rather than failing the study's job.
            gone = [key for key in todo if not store.exists(key)]
            if gone:
                log.warning("study blocks %s: %s frames have no picture in the store", job_id, len(gone))
                todo = [key for key in todo if key not in gone]
                total -= len(gone)
            done += len(keys) - len(todo) - len(gone)
            lease.write_job(STUDY_BLOCKS, job_id, token, frames_total=total, frames_done=done)
            for start in range(0, len(todo), BATCH):
                batch = todo[start : start + BATCH]
                images = [PIL.Image.open(io.BytesIO(store.read(key))).convert("RGB") for key in batch]
                found: dict[tuple[str, str], bytes] = {}
                for run_images, run_keys in _same_size(images, batch):
                    pooled = features.pooled(run_images, [""] * len(run_images), TIMESTEPS, (False,))
                    for reading, vectors in pooled.items():
                        name = scorer_name(reading.block, reading.timestep)
                        for key, vector in zip(run_keys, vectors, strict=True):
                            found[(key, name)] = vector.numpy().astype("<f4").tobytes()
                done += len(batch)
                readings += _keep(job_id, token, found, done, readings)
        lease.finish_job(STUDY_BLOCKS, job_id, token, "done", finished_at=utcnow())
        log.info("study blocks %s: %s frames, %s readings stored", job_id, total, readings)
        return {"readings": readings, "frames": total}
    except lease.LeaseLost:
        raise
    except Exception as exc:
        log.exception("study blocks %s failed", job_id)
        lease.finish_job(STUDY_BLOCKS, job_id, token, "failed", error=f"{type(exc).__name__}: {exc}",
                         finished_at=utcnow())  # fmt: skip
        return {"readings": readings, "error": str(exc)}


def _keep(job_id: int, token: str, found: dict[tuple[str, str], bytes], done: int, readings: int) -> int:
    """Store the readings not stored yet, with the progress, only while this claim holds the job; how many."""
    keys = sorted({key for key, _ in found})
    for _attempt in range(2):
        stored = _stored(keys)
        new = {k: blob for k, blob in found.items() if k not in stored}
        with new_session() as db:
            for (key, name), blob in new.items():
                db.add(FrameScore(frame_key=key, scorer=name, embedding=blob))
            progress = {"frames_done": done, "readings": readings + len(new)}
            if not lease.hold_job(db, STUDY_BLOCKS, job_id, token, **progress):
                db.rollback()
                raise lease.LeaseLost(f"study blocks {job_id} was taken over by another worker")
            try:
                db.commit()
                return len(new)
            except IntegrityError:  # another worker read the same frame meanwhile: theirs is as good
                db.rollback()
    return 0
