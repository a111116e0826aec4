"""Run one export: load it by id, encode the render's stored frames (worker/encode.py), record progress.

Idempotent like render batches (acks_late may redeliver it): the export is claimed under a lease
(worker/lease.py `claim_job`), so a second copy of the task finds nothing to take and only the holder
writes progress and the result; a worker that dies lets the lease run out and the reaper queues the
export again. The file is encoded into a scratch directory and then stored whole under its cache key
(infra/storage.py), so a second run overwrites, never mixes. Frames in an object store are fetched first.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from core.statuses import Status
from infra.config import get_settings
from infra.db import new_session
from infra.storage import get_store
from infra.tables import Export, Frame, Render, Transition, utcnow
from services import scores
from services.exports import FORMATS, ExportOptions
from services.jobs import EXPORTS
from services.notes import notes_json
from worker import lease
from worker.encode import Soundtrack, SourceFrame, encode

log = logging.getLogger(__name__)

#: Progress is written to the database at most this often (and once at the end).
PROGRESS_EVERY_SECONDS = 0.3


def run_export(export_id: int) -> dict[str, object]:
    dropped: dict[str, object] = {"exported": False, "reason": "taken over"}
    return lease.run_job(EXPORTS, export_id, f"export {export_id}", _run_export, dropped)


def _fail(export_id: int, token: str, error: str) -> None:
    lease.finish_job(EXPORTS, export_id, token, Status.FAILED, error=error, finished_at=utcnow())


def _run_export(export_id: int, token: str) -> dict[str, object]:
    settings = get_settings()
    store = get_store()

    # 1. Claim the export (a second copy of the task takes nothing); load its render's frames and keyframes
    with new_session() as db:
        export = db.get(Export, export_id)
        if export is None:
            return {"exported": False, "reason": "gone"}
        name = export.file_name
        if export.status == Status.DONE and name and store.has_export(name):
            return {"exported": False, "reason": "cached"}
        if not lease.claim_job(db, EXPORTS, export_id, token, progress=0.0, error=None):
            return {"exported": False, "reason": "not queued"}
        if not name:
            _fail(export_id, token, "the export has no file name")
            return {"exported": False}
        render = db.get(Render, export.render_id)
        if render is None:
            _fail(export_id, token, f"render {export.render_id} was deleted")
            return {"exported": False, "reason": "gone"}
        title = db.scalar(select(Transition.title).where(Transition.id == render.transition_id)) or ""
        options = ExportOptions.model_validate(export.options)
        frames = list(db.scalars(select(Frame).where(Frame.render_id == render.id).order_by(Frame.index)))
        snapshot = render.snapshot
        keyframe_positions = [k.position for k in snapshot.keyframes]
        # The render's soundtrack (docs/animatics.md): MP4 and WebM carry it, from the transition's offset.
        soundtrack = snapshot.soundtrack if FORMATS[options.format].sound else None
        offset, source_fps = snapshot.audio_offset, snapshot.fps
        there = store.existing(f.key for f in frames)
        missing = [f.index for f in frames if f.status != Status.DONE or f.key not in there]
        placed = [(f.index, f.t, f.key) for f in frames]
        render_id = render.id
        metrics = scores.scores_out(db, render).model_dump(mode="json") if options.format == "zip" else None
        # The transition's review notes as they are now (docs/notes.md); the cache key names them too.
        review_notes = notes_json(db, render.transition_id) if options.format == "zip" else None

    if missing or not placed:
        error = f"render {render_id} has no stored image for frame(s) {missing[:10]}; render it again"
        _fail(export_id, token, error)
        return {"exported": False, "reason": "missing frames"}

    # 2. Encode, reporting progress now and then
    last = [0.0]

    def on_progress(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_SECONDS and fraction < 1.0:
            last[0] = now
            lease.write_job(EXPORTS, export_id, token, progress=round(min(fraction, 0.99), 4))

    started = time.perf_counter()
    try:
        with store.files(key for _, _, key in placed) as paths, tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / name
            sound = None
            if soundtrack:
                track = Path(scratch) / f"soundtrack{Path(soundtrack['key']).suffix}"
                track.write_bytes(store.read_audio(soundtrack["key"]))
                sound = Soundtrack(track, offset)
            encode(
                [SourceFrame(index, t, paths[key]) for index, t, key in placed],
                out,
                options,
                keyframe_positions,
                title=title,
                on_progress=on_progress,
                threads=settings.torch_threads,
                metrics=metrics,
                notes=review_notes,
                sound=sound,
                source_fps=source_fps,
            )
            size = store.put_export(name, out)
    except lease.LeaseLost:
        raise
    except Exception as exc:
        log.exception("export %s of render %s failed", export_id, render_id)
        _fail(export_id, token, f"{type(exc).__name__}: {exc}")
        return {"exported": False, "reason": "failed"}

    if not lease.finish_job(
        EXPORTS, export_id, token, Status.DONE, progress=1.0, size_bytes=size, finished_at=utcnow()
    ):
        raise lease.LeaseLost(f"export {export_id} was taken over before it was stored")
    log.info(
        "export %s: render %s as %s, %d bytes in %.2f s",
        export_id,
        render_id,
        options.format,
        size,
        time.perf_counter() - started,
    )
    return {"exported": True, "bytes": size}
