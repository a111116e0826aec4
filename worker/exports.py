"""Run one export: load it by id, encode the render's stored frames (worker/encode.py), record progress.

Idempotent like render batches (acks_late may redeliver it): a done export whose file exists is left
alone, and the file is encoded into a scratch directory and then stored whole under its cache key
(app/storage.py), so a second run overwrites, never mixes. Frames in an object store are fetched first.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from sqlalchemy import select, update

from app.config import get_settings
from app.db import new_session
from app.services import scores
from app.services.exports import ExportOptions
from app.storage import get_store
from app.tables import Export, Frame, Render, Transition, utcnow
from core.params import RenderSnapshot
from worker.encode import SourceFrame, encode

log = logging.getLogger(__name__)

#: Progress is written to the database at most this often (and once at the end).
PROGRESS_EVERY_SECONDS = 0.3


def _set(export_id: int, **values: object) -> None:
    with new_session() as db:
        db.execute(update(Export).where(Export.id == export_id).values(**values))
        db.commit()


def run_export(export_id: int) -> dict[str, object]:
    settings = get_settings()
    store = get_store()

    # 1. Load the export, its render's frames and keyframes; mark it running
    with new_session() as db:
        export = db.get(Export, export_id)
        if export is None:
            return {"exported": False, "reason": "gone"}
        name = export.file_name
        if not name:
            _set(export_id, status="failed", error="the export has no file name", finished_at=utcnow())
            return {"exported": False}
        if export.status == "done" and store.has_export(name):
            return {"exported": False, "reason": "cached"}
        render = db.get(Render, export.render_id)
        if render is None:
            return {"exported": False, "reason": "gone"}
        title = db.scalar(select(Transition.title).where(Transition.id == render.transition_id)) or ""
        options = ExportOptions.model_validate(export.options)
        frames = list(db.scalars(select(Frame).where(Frame.render_id == render.id).order_by(Frame.index)))
        keyframe_positions = [k.position for k in RenderSnapshot.model_validate(render.params).keyframes]
        missing = [f.index for f in frames if f.status != "done" or not store.exists(f.key)]
        placed = [(f.index, f.t, f.key) for f in frames]
        render_id = render.id
        metrics = scores.scores_out(db, render).model_dump(mode="json") if options.format == "zip" else None
        db.execute(
            update(Export).where(Export.id == export_id).values(status="running", progress=0.0, error=None)
        )
        db.commit()

    if missing or not placed:
        error = f"render {render_id} has no stored image for frame(s) {missing[:10]}; render it again"
        _set(export_id, status="failed", error=error, finished_at=utcnow())
        return {"exported": False, "reason": "missing frames"}

    # 2. Encode, reporting progress now and then
    last = [0.0]

    def on_progress(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_SECONDS and fraction < 1.0:
            last[0] = now
            _set(export_id, progress=round(min(fraction, 0.99), 4))

    started = time.perf_counter()
    try:
        with store.files(key for _, _, key in placed) as paths, tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / name
            encode(
                [SourceFrame(index, t, paths[key]) for index, t, key in placed],
                out,
                options,
                keyframe_positions,
                title=title,
                on_progress=on_progress,
                threads=settings.torch_threads,
                metrics=metrics,
            )
            size = store.put_export(name, out)
    except Exception as exc:
        log.exception("export %s of render %s failed", export_id, render_id)
        _set(export_id, status="failed", error=f"{type(exc).__name__}: {exc}", finished_at=utcnow())
        return {"exported": False, "reason": "failed"}

    _set(export_id, status="done", progress=1.0, size_bytes=size, finished_at=utcnow())
    log.info(
        "export %s: render %s as %s, %d bytes in %.2f s",
        export_id,
        render_id,
        options.format,
        size,
        time.perf_counter() - started,
    )
    return {"exported": True, "bytes": size}
