"""Job kinds and recovery: the database is the truth about which work is unfinished; this requeues it.

- `reap`: frames whose worker's lease ran out (the worker died, was killed or lost its database for
  longer than the lease) go back to `pending` and are queued again, in batches, coarse to fine. A frame
  taken `max_attempts` times without finishing fails its render with the reason. Renders whose frames
  are all done but that were never closed (a worker died right after its last frame) are closed.
  Runs every `reap_seconds` in the web app (`reaper_loop`, started by the app's lifespan) and in every
  worker (worker/lease.py); each step is one conditional UPDATE, so any number of reapers may race.
- Frames `pending` in no message (the broker lost it: a Redis without persistence came back empty, or a
  worker died between taking a message and claiming its frames) are queued again when the render queue
  has been empty for two reaper rounds while they waited. A duplicate message is harmless: whoever
  comes second finds the frames claimed.
- Jobs (`JOBS`: exports, suggestions, switch step searches, the planning of renders with probed spacing)
  are held the same way, one row per job: a worker claims the row under a lease (worker/lease.py
  `claim_job`), its pulse extends it, and only the holder writes the result. `reap` queues a `running` job
  whose lease ran out again (`queued`, then its task is sent), and after `max_attempts` takes fails it
  with the reason; a `queued` job that no message names is sent again like pending frames.
- `retry_render`: a failed or cancelled render queues exactly the frames it is missing again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import ColumnElement, Engine, create_engine, event, exists, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from core.statuses import FINISHED, UNFINISHED, Status
from infra import heartbeat, queue
from infra.bus import get_bus
from infra.config import get_settings
from infra.db import _sqlite_pragmas
from infra.tables import Autofix, ConceptSearch, Export, Frame, Render, StudyBlocks, Suggestion, utcnow
from services.errors import BrokerUnavailable, FieldError
from services.presenters import progress
from services.rendering import batches, check_quotas, failing_render, finish_render
from services.sending import sent_or_failed

log = logging.getLogger(__name__)

RETRYABLE = (Status.FAILED, Status.CANCELLED)


def batches_of(render: Render, indices: set[int]) -> list[list[int]]:
    """The frames `indices` of a render in batches of its batch size, coarse to fine (as first queued)."""
    frames = sorted(render.frames, key=lambda f: f.index)
    plans: Any = [SimpleNamespace(start_step=f.start_step) for f in frames]
    size = render.snapshot.batch_size
    return batches(plans, [f.key for f in frames], indices, size)


def send_batches(render: Render, indices: set[int]) -> int:
    """Queue these frames of the render; the broker's error propagates (nothing is marked)."""
    sent = 0
    for batch in batches_of(render, indices):
        queue.send_render_batch(render.id, batch)
        sent += 1
    return sent


# ---------------------------------------------------------------- jobs held under a lease


@dataclass(frozen=True)
class Job:
    """A kind of worker job held under a lease like a batch's frames, one row per job.

    Its row is `queued` until a worker claims it (`running`, with that claim's token and `leased_until`),
    then `done` or `failed`. `attempts` counts the takes of the current request: a claim of a `queued` row
    whose `leased_until` is null (a new or re-asked request: every end of a run clears it) starts at 1,
    every other take (after the reaper queued it again, it keeps its expired `leased_until`) adds one.
    """

    kind: str
    table: Any
    #: The task that runs it (a function of infra.queue, looked up when sending, so tests can record it).
    sender: str
    #: What a person reads when its workers keep dying: "the worker {doing} stopped 3 times without
    #: finishing {it} (…); {again}".
    doing: str
    again: str
    it: str = "it"

    def send(self, job_id: int) -> None:
        getattr(queue, self.sender)(job_id)

    def reason(self, attempts: int) -> str:
        return (
            f"the worker {self.doing} stopped {attempts} times without finishing {self.it} "
            f"(crashed, killed or out of memory); {self.again}"
        )

    def expired(self, now: datetime) -> ColumnElement[bool]:
        """Running, under a lease that ran out (its worker died, or lost the database for that long)."""
        t = self.table
        return (t.status == Status.RUNNING) & or_(t.leased_until.is_(None), t.leased_until < now)

    def claimable(self, now: datetime) -> ColumnElement[bool]:
        return (self.table.status == Status.QUEUED) | self.expired(now)

    def waiting(self) -> ColumnElement[bool]:
        """Queued: a message should name it."""
        return self.table.status == Status.QUEUED


class Planning(Job):
    """The probe pass of a render with perceptual or adaptive spacing (worker/planning.py): the lease is the
    render row's while it has no frames. Once planned its frames hold their own leases and the render's
    lease is cleared (in the transaction that adds the frames), so nothing here touches it again."""

    @staticmethod
    def _unplanned() -> ColumnElement[bool]:
        return ~exists().where(Frame.render_id == Render.id)

    def expired(self, now: datetime) -> ColumnElement[bool]:
        # A running render without a token is rendering its frames (or being closed): not a planning job.
        return (
            (Render.status == Status.RUNNING)
            & Render.lease_token.is_not(None)
            & or_(Render.leased_until.is_(None), Render.leased_until < now)
            & self._unplanned()
        )

    def claimable(self, now: datetime) -> ColumnElement[bool]:
        return ((Render.status == Status.QUEUED) | self.expired(now)) & self._unplanned()

    def waiting(self) -> ColumnElement[bool]:
        return (Render.status == Status.QUEUED) & self._unplanned()


class AutofixJob(Job):
    """An autopilot run or a Fix request (worker/autofix.py). Between two steps an autopilot `waits` for its
    round's render without a lease; once that render is finished the row is claimable again, and a
    waiting row whose render finished is a job a message should name (the render's end sends it)."""

    def _render_finished(self) -> ColumnElement[bool]:
        t = self.table
        return (t.status == Status.WAITING) & exists().where(
            Render.id == t.render_id, Render.status.in_(FINISHED)
        )

    def claimable(self, now: datetime) -> ColumnElement[bool]:
        return super().claimable(now) | self._render_finished()

    def waiting(self) -> ColumnElement[bool]:
        return super().waiting() | self._render_finished()


EXPORTS = Job("export", Export, "send_export", "running this export", "ask again to retry")
SUGGESTIONS = Job(
    "suggestions", Suggestion, "send_suggestions", "writing these suggestions", "ask again to retry", "them"
)
SEARCHES = Job(
    "switch step search",
    ConceptSearch,
    "send_moce_search",
    "searching this switch step",
    "save the keyframe again to search again",
)
PLANNING = Planning(
    "planning", Render, "send_plan_render", "placing this render's frames", "retry to try again"
)
AUTOFIXES = AutofixJob("autofix", Autofix, "send_autofix", "running this autofix", "start it again to retry")
STUDY_BLOCKS = Job(
    "study blocks", StudyBlocks, "send_study_blocks", "reading this study's U-Net blocks", "ask again"
)
JOBS: dict[str, Job] = {
    job.kind: job for job in (EXPORTS, SUGGESTIONS, SEARCHES, PLANNING, AUTOFIXES, STUDY_BLOCKS)
}


def _reap_jobs(db: Session, now: datetime, counts: dict[str, int]) -> None:
    """Jobs whose lease ran out: queued again and their task sent, or failed after max_attempts takes."""
    settings = get_settings()
    for job in JOBS.values():
        t = job.table
        worn = db.execute(
            select(t.id, t.attempts).where(job.expired(now), t.attempts >= settings.max_attempts)
        ).all()
        for job_id, attempts in worn:
            # One conditional UPDATE per job (a racing reaper finds nothing left to fail).
            final = {} if job is PLANNING else {"status": Status.FAILED, "error": job.reason(attempts)}
            taken = db.execute(
                update(t)
                .where(t.id == job_id, job.expired(now), t.attempts >= settings.max_attempts)
                .values(lease_token=None, leased_until=None, finished_at=now, **final),
                execution_options={"synchronize_session": False},
            ).rowcount  # type: ignore[attr-defined]
            if taken != 1:
                db.rollback()
                continue
            log.warning("%s %s lost its worker %s times; failed", job.kind, job_id, attempts)
            counts["jobs_failed"] += 1
            render = db.get(Render, job_id) if job is PLANNING else None
            if render is not None:  # failed and announced in the same transaction (finish_render commits)
                finish_render(db, render, Status.FAILED, error=job.reason(attempts))
            else:
                db.commit()

        # The rest go back to `queued` (one reaper wins each), keeping their expired `leased_until`: the next
        # claim counts another take. Then their task is sent again.
        lost = db.scalars(
            update(t)
            .where(job.expired(now), t.attempts < settings.max_attempts)
            .values(status=Status.QUEUED, lease_token=None, leased_until=func.coalesce(t.leased_until, now))
            .returning(t.id),
            execution_options={"synchronize_session": False},
        ).all()
        db.commit()
        for job_id in lost:
            log.warning("%s %s lost its worker; queued again", job.kind, job_id)
            try:
                job.send(job_id)
                counts["jobs_requeued"] += 1
            except Exception as exc:  # broker away: leave it expired (running), the next round tries again
                log.warning("%s %s: could not queue it again (%s)", job.kind, job_id, exc)
                db.execute(
                    update(t)
                    .where(t.id == job_id, t.status == Status.QUEUED, t.lease_token.is_(None))
                    .values(status=Status.RUNNING, lease_token=uuid.uuid4().hex, leased_until=now),
                    execution_options={"synchronize_session": False},
                )
                db.commit()


# ---------------------------------------------------------------- the reaper


_engines: dict[str, Engine] = {}


def _session() -> Session:
    """The reaper's own connections (no pool): it never takes one a request is waiting for."""
    url = get_settings().database_url
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 10})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, poolclass=NullPool)
        _engines[url] = engine
    return Session(bind=engine, expire_on_commit=False)


def reap() -> dict[str, int]:
    """Queue again every frame and job whose lease ran out; close renders that are complete; counts."""
    settings = get_settings()
    now = utcnow()
    counts = {"requeued": 0, "failed": 0, "closed": 0, "orphans": 0, "jobs_requeued": 0, "jobs_failed": 0}
    unfinished = select(Render.id).where(Render.status.in_(UNFINISHED))
    with _session() as db:
        taken = db.execute(
            update(Frame)
            .where(
                Frame.status == Status.RUNNING,
                or_(Frame.leased_until.is_(None), Frame.leased_until < now),
                Frame.render_id.in_(unfinished.scalar_subquery()),
            )
            .values(status=Status.PENDING, lease_token=None, leased_until=None)
            .returning(Frame.render_id, Frame.index, Frame.attempts),
            execution_options={"synchronize_session": False},
        ).all()
        db.commit()

        lost: dict[int, set[int]] = defaultdict(set)
        worn: dict[int, set[int]] = defaultdict(set)
        for render_id, index, attempts in taken:
            (worn if attempts >= settings.max_attempts else lost)[render_id].add(index)

        for render_id, indices in worn.items():
            render = db.get(Render, render_id)
            if render is None:
                continue
            counts["failed"] += len(indices)
            listed = ", ".join(f"#{i}" for i in sorted(indices))
            db.execute(
                update(Frame)
                .where(Frame.render_id == render_id, Frame.index.in_(indices), Frame.status == Status.PENDING)
                .values(status=Status.FAILED)
            )
            db.commit()
            finish_render(
                db,
                render,
                Status.FAILED,
                error=f"the workers rendering frames {listed} stopped {settings.max_attempts} times "
                "without finishing them (crashed, killed or out of memory); retry to try again",
            )
            lost.pop(render_id, None)

        for render_id, indices in lost.items():
            render = db.get(Render, render_id)
            if render is None or render.is_finished:
                continue
            log.warning("render %s: frames %s lost their worker; queued again", render_id, sorted(indices))
            try:
                send_batches(render, indices)
                counts["requeued"] += len(indices)
            except Exception as exc:  # broker away: leave them expired, the next round tries again
                log.warning("render %s: could not queue lost frames again (%s)", render_id, exc)
                db.execute(
                    update(Frame)
                    .where(
                        Frame.render_id == render_id, Frame.index.in_(indices), Frame.status == Status.PENDING
                    )
                    .values(status=Status.RUNNING, leased_until=now)
                )
                db.commit()

        # Renders whose every frame is done but that nobody closed (their worker died after the last frame).
        complete = db.scalars(
            select(Render).where(
                Render.status.in_(UNFINISHED),
                Render.frames_total > 0,
                ~exists().where(Frame.render_id == Render.id, Frame.status != Status.DONE),
            )
        ).all()
        for render in complete:
            if finish_render(db, render, Status.DONE):
                counts["closed"] += 1

        _reap_jobs(db, now, counts)
        counts["orphans"] = _requeue_orphans(db)
        heartbeat.prune(db)
    return counts


#: Pending frames and queued jobs seen while the queue was empty in the previous round:
#: ("frame", render id, index) and (job kind, job id).
_suspects: set[tuple[Any, ...]] = set()


def _requeue_orphans(db: Session) -> int:
    """Queue again the pending frames and queued jobs that no message names (seen so in two rounds in a
    row). A duplicate message is harmless: whoever comes second finds nothing to claim."""
    global _suspects
    waiting: set[tuple[Any, ...]] = {
        ("frame", render_id, index)
        for render_id, index in db.execute(
            select(Frame.render_id, Frame.index).where(
                Frame.status == Status.PENDING,
                Frame.render_id.in_(select(Render.id).where(Render.status.in_(UNFINISHED)).scalar_subquery()),
            )
        ).tuples()
    }
    for job in JOBS.values():
        waiting |= {(job.kind, job_id) for job_id in db.scalars(select(job.table.id).where(job.waiting()))}
    if not waiting or queue.queue_depth() > 0:  # messages wait: the frames and jobs they name will be taken
        _suspects = set()
        return 0
    confirmed, _suspects = waiting & _suspects, waiting
    lost: dict[int, set[int]] = defaultdict(set)
    requeued = 0
    for suspect in confirmed:
        if suspect[0] == "frame":
            lost[suspect[1]].add(suspect[2])
            continue
        log.warning("%s %s waited in no message; queued again", *suspect)
        JOBS[suspect[0]].send(suspect[1])
        requeued += 1
    for render_id, indices in lost.items():
        render = db.get(Render, render_id)
        if render is None or render.is_finished:
            continue
        log.warning("render %s: frames %s waited in no message; queued again", render_id, sorted(indices))
        send_batches(render, indices)
        requeued += len(indices)
    _suspects -= confirmed
    return requeued


async def reaper_loop(interval: float | None = None) -> None:
    """The web app's reaper: `reap` every `reap_seconds` until cancelled; a failing round is logged."""
    every = interval or get_settings().reap_seconds
    while True:
        try:
            counts = await asyncio.to_thread(reap)
            if any(counts.values()):
                log.info("reaper: %s", counts)
        except Exception as exc:  # the database away for a moment: try again next round
            log.warning("reaper round failed: %s", exc)
        await asyncio.sleep(every)


# ---------------------------------------------------------------- retry


def retry_render(db: Session, render: Render, link_id: int | None = None) -> Render:
    """Queue the frames a failed or cancelled render is missing (only those); the render runs again.
    `link_id`: the share link asking, whose quota of renders at once the retried render then counts in."""
    if render.status not in RETRYABLE:
        raise FieldError(
            "status",
            f"render {render.id} is {render.status}; only a failed or cancelled render can be retried",
        )
    check_quotas(db, render.transition_id, render.snapshot, 0, link_id)
    problem = queue.broker_error()
    if problem:
        raise BrokerUnavailable(f"the render queue is unreachable, nothing was queued: {problem}")
    moved = db.execute(
        update(Render)
        .where(Render.id == render.id, Render.status.in_(RETRYABLE))
        .values(
            status=Status.QUEUED,
            error=None,
            finished_at=None,
            link_id=link_id,
            lease_token=None,
            leased_until=None,
            attempts=0,
        )
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        db.rollback()
        db.refresh(render)
        raise FieldError("status", f"render {render.id} is {render.status} now; it was retried meanwhile")
    db.execute(
        update(Frame)
        .where(Frame.render_id == render.id, Frame.status != Status.DONE)
        .values(status=Status.PENDING, lease_token=None, leased_until=None, attempts=0)
    )
    db.commit()
    db.refresh(render)
    for frame in render.frames:
        db.refresh(frame)
    missing = {f.index for f in render.frames if f.status != Status.DONE}
    # the broker may go away between the check and the send
    with sent_or_failed(f"the retry of render {render.id}", failing_render(db, render)):
        if not render.frames:  # failed while its frames were being placed: place them again
            queue.send_plan_render(render.id)
        elif not missing:
            finish_render(db, render, Status.DONE)
            return render
        else:
            send_batches(render, missing)
    try:
        get_bus().publish(progress(render))
    except Exception:  # the stream learns the status from the database too
        log.warning("render %s: could not announce its retry", render.id)
    return render
