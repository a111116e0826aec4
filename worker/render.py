"""Render one batch of a render's frames: load by id, run the engine, store images, emit typed events.

Idempotent, because acks_late redelivers a batch whose worker died: frames already done are skipped,
images are written atomically under their content key, and a render finishes exactly once. In a worker
(`overlap=True`) only the denoising is on the critical path: the batch's scoring, storing and announcing
run on the second stage (worker/finishing.py) while the next batch denoises.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update

from core import events
from core.params import RenderSnapshot
from core.statuses import Status
from infra.bus import get_bus
from infra.config import get_settings
from infra.db import new_session
from infra.storage import get_store
from infra.tables import Frame, Render, utcnow
from infra.watching import watched
from services.noise_paths import shared_step
from services.presenters import frame_done, progress
from services.rendering import finish_render
from worker import keyframe_images, lease
from worker.finishing import finishing
from worker.images import png
from worker.planning import frame_requests
from worker.scoring import ScoreRow, score_frames, store_scores

log = logging.getLogger(__name__)

#: Send a preview of the batch being denoised every this many steps (and at the last one).
PREVIEW_EVERY = 5
#: While a batch denoises, its render's status is read at most this often (not once per step): a cancel
#: is seen within this time, and the render stops at the next step after it is seen.
CANCEL_POLL_SECONDS = 0.5


def _is_cancelled(render_id: int) -> bool:
    with new_session() as db:
        status = db.scalar(select(Render.status).where(Render.id == render_id))
        return status is None or status in (Status.CANCELLED, Status.FAILED)  # None: the render was deleted


class CancelWatch:
    """should_cancel for the engine: a flag refreshed from the database every CANCEL_POLL_SECONDS."""

    def __init__(
        self,
        render_id: int,
        every: float = CANCEL_POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.render_id = render_id
        self.every = every
        self.clock = clock
        self.cancelled = False
        self.reads = 0  # database reads so far
        self._read_at = -math.inf

    def __call__(self) -> bool:
        if not self.cancelled and self.clock() - self._read_at >= self.every:
            self._read_at = self.clock()
            self.reads += 1
            self.cancelled = _is_cancelled(self.render_id)
        return self.cancelled


def _data_uri(image: Any) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class Rendered:
    """A denoised and decoded batch, still held under its lease, waiting to be stored and announced."""

    render_id: int
    token: str
    engine: Any
    images: list[Any]
    frame_ids: list[int]
    frame_indices: list[int]
    frame_keys: list[str]
    frame_prompts: list[tuple[str, str]]
    seconds_each: float
    scores: list[ScoreRow] = field(default_factory=list)


def run_batch(render_id: int, indices: list[int], *, overlap: bool = False) -> dict[str, int]:
    """Render the batch's frames this worker can claim. Any failure is visible: the frames and the render
    are marked failed with the reason (the page offers Retry); a crash is recovered by the reaper.

    overlap: hand the rendered batch to the second stage and return (a worker: the next batch denoises
    while this one is stored); otherwise store it before returning ("rendered": frames marked done)."""
    token = lease.new_token()
    beat = lease.pulse()
    handed_over = False
    try:
        batch = _render(render_id, indices, token, beat)
        if batch is None:
            return {"rendered": 0}
        batch.scores = _score(batch)
        if overlap:
            finishing().hand_over(lambda: _finish_handed_over(batch, beat))
            handed_over = True
            return {"rendered": len(batch.images)}
        return {"rendered": _finish(batch)}
    except Exception as exc:
        log.exception("render %s: batch %s failed", render_id, indices)
        _fail(render_id, token, f"{type(exc).__name__}: {exc}")
        return {"rendered": 0}
    finally:
        if not handed_over:
            beat.drop(token)


def _score(batch: Rendered) -> list[ScoreRow]:
    """3. Score the batch while its images are in memory, on this thread (worker/scoring.score_frames says
    why not on the second stage); a scorer's failure costs the confusion map a frame, never the render."""
    try:
        return score_frames(batch.engine, batch.images, batch.frame_keys, batch.frame_prompts)
    except Exception:
        log.exception("render %s: scoring batch %s failed", batch.render_id, batch.frame_indices)
        return []


def _finish_handed_over(batch: Rendered, beat: lease.Pulse) -> None:
    """The second stage's work for one batch: as run_batch does it, then the lease is let go."""
    try:
        _finish(batch)
    except Exception as exc:
        log.exception("render %s: storing batch %s failed", batch.render_id, batch.frame_indices)
        _fail(batch.render_id, batch.token, f"{type(exc).__name__}: {exc}")
    finally:
        beat.drop(batch.token)


def _fail(render_id: int, token: str, reason: str) -> None:
    """Mark the frames still held under `token` and their render failed, with the reason."""
    lease.release(token, Status.FAILED)
    with new_session() as db:
        render = db.get(Render, render_id)
        if render is not None:
            finish_render(db, render, Status.FAILED, error=reason)


def _render(render_id: int, indices: list[int], token: str, beat: lease.Pulse) -> Rendered | None:
    """Claim the batch and denoise it; None when there is nothing left to store (claimed by another
    worker, cancelled, or failed: the frames and the render say so)."""
    # Imported here so that importing the task module (e.g. by `celery inspect`) stays light.
    from engine.pipeline import RenderCancelled, get_engine

    settings = get_settings()
    bus = get_bus()

    # 1. Claim the batch's frames that nobody holds, under a lease the pulse thread keeps alive
    with new_session() as db:
        render = db.get(Render, render_id)
        if render is None or render.is_finished:
            return None
        frames = lease.claim(db, render_id, indices, token)
        # Keep the order the planner chose (coarse to fine).
        rank = {index: i for i, index in enumerate(indices)}
        frames.sort(key=lambda f: rank.get(f.index, 0))
        if not frames:
            return None
        beat.hold(token, f"render {render_id}: frames {', '.join(str(f.index) for f in frames)}")
        if render.status == Status.QUEUED:
            db.execute(
                update(Render)
                .where(Render.id == render_id, Render.status == Status.QUEUED)
                .values(status=Status.RUNNING, started_at=func.coalesce(Render.started_at, utcnow()))
            )
        db.commit()
        db.refresh(render)
        bus.publish(progress(render))
        snapshot = RenderSnapshot.model_validate(render.params)
        requests = frame_requests(db, render_id, frames)  # noise, switch step, shared anchors
        image_rows = keyframe_images.image_frames(snapshot, frames)  # frames made from keyframe images
        frame_ids = [f.id for f in frames]
        frame_indices = [f.index for f in frames]
        frame_keys = [f.key for f in frames]
        frame_prompts = [(f.prompt_a, f.prompt_b) for f in frames]

    # 2. Render on the engine, with previews every few steps (of the frames it denoises as a batch) while
    # someone watches
    engine = None
    previewed = [i for i, row in zip(frame_indices, image_rows, strict=True) if row is None]

    def on_step(step: int, total: int, latents: Any) -> None:
        if engine is None or ((step + 1) % PREVIEW_EVERY and step + 1 != total) or not watched(render_id):
            return
        images = [_data_uri(img) for img in engine.preview(latents)]
        bus.publish(
            events.Preview(render_id=render_id, indices=previewed, step=step + 1, steps=total, images=images)
        )

    started = time.perf_counter()
    try:
        engine = get_engine(snapshot.model, models_dir=settings.models_dir, device=settings.worker_device)
        images = keyframe_images.render(
            engine,
            snapshot,
            requests,
            image_rows,
            lambda plain: engine.render(  # type: ignore[union-attr]
                snapshot.pixels(),
                plain,
                on_step=on_step,
                should_cancel=CancelWatch(render_id),
                keep_latents_at=[k] if (k := shared_step(snapshot)) else [],
            ),
        )
    except RenderCancelled as stop:
        log.info("render %s cancelled during batch %s: %s", render_id, frame_indices, stop)
        lease.release(token, Status.CANCELLED)
        return None
    except Exception as exc:
        log.exception("render %s failed in batch %s", render_id, frame_indices)
        _fail(render_id, token, f"{type(exc).__name__}: {exc}")
        return None
    seconds_each = (time.perf_counter() - started) / len(images)
    frame_prompts = keyframe_images.scored_prompts(engine, snapshot, image_rows, frame_prompts)
    return Rendered(
        render_id, token, engine, images, frame_ids, frame_indices, frame_keys, frame_prompts, seconds_each
    )


def _finish(batch: Rendered) -> int:
    """Store a rendered batch's scores and images and announce it; returns how many of its frames this
    worker marked done."""
    render_id = batch.render_id
    bus = get_bus()
    store = get_store()
    with new_session() as db:
        render = db.get(Render, render_id)
        if render is None or render.is_finished:
            # Failed, cancelled or deleted while this batch waited for the stage: as if it had not been
            # claimed (no event may follow the render's final one; a retry renders these frames).
            lease.release(batch.token, "pending")
            return 0

    # Keep the batch's scores (3., computed by run_batch) before a frame is announced, so they are there
    try:
        store_scores(batch.scores)
    except Exception:  # a lost score costs the confusion map a frame, never the render
        log.exception("render %s: storing the scores of batch %s failed", render_id, batch.frame_indices)

    # 4. Store each image under its key, then mark it done and announce it. Only the holder of a frame's
    # lease marks it done (so it is counted and announced once); a frame of a render that was cancelled
    # or deleted meanwhile, or taken over after this worker's lease ran out, is skipped. Any error here
    # (frame store, database, event bus) fails the batch with its reason (run_batch).
    rendered = 0
    for frame_id, key, image in zip(batch.frame_ids, batch.frame_keys, batch.images, strict=True):
        try:
            store.write(key, png(image))
        except OSError as exc:
            raise OSError(f"could not store frame {key[:12]} in the frame store: {exc}") from exc
        with new_session() as db:
            if not lease.complete(db, render_id, frame_id, batch.token, batch.seconds_each):
                continue
            frame = db.get(Frame, frame_id)
        rendered += 1
        if frame is not None:
            bus.publish(frame_done(frame))
    with new_session() as db:
        render = db.get(Render, render_id)
        if render is None:  # deleted while the batch rendered
            return rendered
        bus.publish(progress(render))
        remaining = db.scalar(
            select(Frame.id).where(Frame.render_id == render_id, Frame.status != Status.DONE).limit(1)
        )
        if remaining is None:
            finish_render(db, render, Status.DONE)
    return rendered
