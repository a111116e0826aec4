"""Comparing a study with each U-Net block (docs/studies.md): asking the worker to read every block of the
study's frames, and what the study page shows of it.

The web side never runs torch: it keeps one job row per study (infra.tables.StudyBlocks, held under a lease
like exports, services/jobs.py STUDY_BLOCKS) and queues worker/block_features.py. The readings land
in frame_scores as `unet/<block>@t<t>` (core/block_readings.py), where services/distances.py finds them:
the study's results grow one row per block and noise level with no change there.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import block_readings
from infra import queue
from infra.tables import Study, StudyBlocks, utcnow
from services.errors import BrokerUnavailable, Busy

log = logging.getLogger(__name__)

Status = Literal["none", "queued", "running", "done", "failed"]
UNDER_WAY = ("queued", "running")


class BlocksOut(BaseModel):
    """Reading each U-Net block for a study: `none` until asked, then queued, running, done or failed."""

    study_id: int
    status: Status
    #: Frames (distinct frame keys of the study's renders) to read, and read so far (stored ones count).
    frames_total: int = 0
    frames_done: int = 0
    #: Readings (frame scores) this run stored: one per frame x block x noise level.
    readings: int = 0
    #: Noise levels read, on the 1000-step scale; every block is read at each, without text.
    timesteps: list[int] = list(block_readings.TIMESTEPS)
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


def get_job(db: Session, study: Study) -> StudyBlocks | None:
    return db.scalars(select(StudyBlocks).where(StudyBlocks.study_id == study.id)).first()


def blocks_out(study: Study, row: StudyBlocks | None) -> BlocksOut:
    if row is None:
        return BlocksOut(study_id=study.id, status="none")
    return BlocksOut.model_validate(row, from_attributes=True)


def ask(db: Session, study: Study) -> StudyBlocks:
    """Queue the reading of every block for the study's frames (again: new frames get read, stored ones are
    skipped). Busy (409) while a reading is queued or running; BrokerUnavailable (503) if not sent."""
    row = get_job(db, study)
    if row is not None and row.status in UNDER_WAY:
        raise Busy(
            f"study {study.id}'s U-Net blocks are being read already ({row.status}, "
            f"{row.frames_done} of {row.frames_total} frames); wait for it to finish"
        )
    if row is None:
        row = StudyBlocks(study_id=study.id)
        db.add(row)
    # A new request: no lease ever expired on it, so its first claim counts from 1 (recovery.Job).
    row.status, row.error, row.frames_total, row.frames_done, row.readings = "queued", None, 0, 0, 0
    row.lease_token = row.leased_until = row.started_at = row.finished_at = None
    row.created_at = utcnow()
    db.commit()
    try:
        queue.send_study_blocks(row.id)
    except Exception as exc:  # broker down: say so instead of leaving the request queued forever
        log.exception("could not queue the U-Net blocks of study %s", study.id)
        row.status, row.error, row.finished_at = "failed", f"the queue is unreachable: {exc}", utcnow()
        db.commit()
        raise BrokerUnavailable(row.error) from exc
    return row


def page_context(found: dict[str, Any], row: StudyBlocks | None, study: Study) -> dict[str, Any]:
    """What the study page shows of it: the job's state, and the block x noise grid of triplet accuracy."""
    return {
        "blocks": blocks_out(study, row),
        "block_grid": block_readings.grid(found["distances"]),
    }


__all__ = ["UNDER_WAY", "BlocksOut", "ask", "blocks_out", "get_job", "page_context"]
