"""Leases: a worker holds the frames it renders, and says so every few seconds while it is alive.

- `claim`: one conditional UPDATE takes a batch's frames that are pending, or running under a lease that
  ran out, and gives them this claim's token and a lease of `lease_seconds`. A second copy of the batch
  (a broker's redelivery, the reaper's requeue racing a slow worker) finds nothing to take.
- `complete`: a frame is marked done only by the holder of its lease, in one conditional UPDATE, so each
  frame is counted and announced exactly once even when two workers rendered it.
- `Pulse`: one thread per worker process. While a batch renders it extends that batch's lease (torch
  releases the GIL, so the thread runs between kernels); it also writes the worker's heartbeat row and
  runs the reaper (services/jobs.py), so a batch whose worker died is queued again by any worker
  that is alive, even when no web app runs.
- Jobs (exports, suggestions, switch step searches, the planning of renders: services/jobs.py
  `JOBS`) are held the same way, one row each: `claim_job` takes a queued row, or a running one whose lease
  ran out, in one conditional UPDATE (a second copy of the job takes nothing); `held(token, what, job)`
  keeps its lease alive; `write_job` and `finish_job` write only while this claim holds it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.orm import Session

from core.statuses import Status
from infra import heartbeat
from infra.config import get_settings
from infra.db import new_session
from infra.tables import Frame, Render, utcnow
from services import jobs
from services.jobs import Job

log = logging.getLogger(__name__)

T = TypeVar("T")


def new_token() -> str:
    return uuid.uuid4().hex


def _until() -> object:
    return utcnow() + timedelta(seconds=get_settings().lease_seconds)


def claim(db: Session, render_id: int, indices: list[int], token: str) -> list[Frame]:
    """Take the batch's frames that nobody holds; returns them (in no particular order), committed."""
    now = utcnow()
    db.execute(
        update(Frame)
        .where(
            Frame.render_id == render_id,
            Frame.index.in_(indices),
            or_(
                Frame.status == Status.PENDING,
                (Frame.status == Status.RUNNING)
                & or_(Frame.leased_until.is_(None), Frame.leased_until < now),
            ),
        )
        .values(status=Status.RUNNING, lease_token=token, leased_until=_until(), attempts=Frame.attempts + 1),
        execution_options={"synchronize_session": False},
    )
    db.commit()
    return list(db.scalars(select(Frame).where(Frame.render_id == render_id, Frame.lease_token == token)))


def extend(tokens: list[str]) -> int:
    """Push the leases of these claims forward; returns how many frames are still held."""
    if not tokens:
        return 0
    with new_session() as db:
        result = db.execute(
            update(Frame)
            .where(Frame.lease_token.in_(tokens), Frame.status == Status.RUNNING)
            .values(leased_until=_until()),
            execution_options={"synchronize_session": False},
        )
        db.commit()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def complete(db: Session, render_id: int, frame_id: int, token: str, seconds: float) -> bool:
    """Mark a held frame done and count it on its render, in one transaction; False if the lease was lost."""
    result = db.execute(
        update(Frame)
        .where(Frame.id == frame_id, Frame.lease_token == token, Frame.status == Status.RUNNING)
        .values(
            status=Status.DONE,
            seconds=round(seconds, 4),
            finished_at=utcnow(),
            lease_token=None,
            leased_until=None,
        ),
        execution_options={"synchronize_session": False},
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        db.rollback()
        return False
    db.execute(
        update(Render).where(Render.id == render_id).values(frames_computed=Render.frames_computed + 1),
        execution_options={"synchronize_session": False},
    )
    db.commit()
    return True


def release(token: str, status: str) -> int:
    """Give up the frames still held under `token`, marking them `status` (failed, cancelled or pending)."""
    with new_session() as db:
        result = db.execute(
            update(Frame)
            .where(Frame.lease_token == token, Frame.status == Status.RUNNING)
            .values(status=status, lease_token=None, leased_until=None),
            execution_options={"synchronize_session": False},
        )
        db.commit()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- jobs


class LeaseLost(Exception):
    """This worker's claim on a job was taken over (its lease ran out): stop, write nothing more."""


def claim_job(db: Session, job: Job, job_id: int, token: str, **values: Any) -> bool:
    """Take the job if it is queued, or running under a lease that ran out; committed. `values` are written
    with the claim (e.g. progress reset). False: another claim holds it, or it is finished or gone."""
    t = job.table
    now = utcnow()
    result = db.execute(
        update(t)
        .where(t.id == job_id, job.claimable(now))
        .values(
            status=Status.RUNNING,
            lease_token=token,
            leased_until=_until(),
            # A new request (queued, no lease ever expired on it) starts counting again: see jobs.Job.
            attempts=case(
                (and_(t.status == Status.QUEUED, t.leased_until.is_(None)), 1), else_=t.attempts + 1
            ),
            **values,
        ),
        execution_options={"synchronize_session": False},
    )
    db.commit()
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def hold_job(db: Session, job: Job, job_id: int, token: str, **values: Any) -> bool:
    """Write `values` to the job if this claim still holds it, in the caller's transaction (not committed)."""
    t = job.table
    result = db.execute(
        update(t).where(t.id == job_id, t.lease_token == token, t.status == Status.RUNNING).values(**values),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def write_job(job: Job, job_id: int, token: str, **values: Any) -> None:
    """Write progress to a job this claim holds; LeaseLost (nothing written) when it holds it no more."""
    with new_session() as db:
        if not hold_job(db, job, job_id, token, **values):
            db.rollback()
            raise LeaseLost(f"{job.kind} {job_id} was taken over by another worker")
        db.commit()


def finish_job(job: Job, job_id: int, token: str, status: str, **values: Any) -> bool:
    """End a job this claim holds (done or failed) and give up its lease; False if it was taken over."""
    with new_session() as db:
        ended = hold_job(db, job, job_id, token, status=status, lease_token=None, leased_until=None, **values)
        db.commit()
        return ended


def extend_jobs(held: dict[str, list[str]]) -> int:
    """Push the leases of these job claims (kind -> tokens) forward; returns how many jobs are still held."""
    count = 0
    with new_session() as db:
        for kind, tokens in held.items():
            t = jobs.JOBS[kind].table
            result = db.execute(
                update(t)
                .where(t.lease_token.in_(tokens), t.status == Status.RUNNING)
                .values(leased_until=_until()),
                execution_options={"synchronize_session": False},
            )
            count += int(result.rowcount or 0)  # type: ignore[attr-defined]
        db.commit()
    return count


# ---------------------------------------------------------------- the pulse


class Pulse(threading.Thread):
    """The worker's heartbeat thread: extends held leases, writes the heartbeat row, runs the reaper."""

    def __init__(self) -> None:
        super().__init__(name="segue-pulse", daemon=True)
        self._held: dict[str, str] = {}  # token -> what it is ("render 7: frames 0, 5")
        self._kinds: dict[str, str] = {}  # token -> job kind (jobs.JOBS); frames have none
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.worker_name: str | None = None
        self.queue = ""
        self.started_at = utcnow()

    def hold(self, token: str, what: str, job: Job | None = None) -> None:
        """Keep the claim `token` alive: a batch's frames, or the row of `job`."""
        with self._lock:
            self._held[token] = what
            if job is not None:
                self._kinds[token] = job.kind

    def drop(self, token: str) -> None:
        with self._lock:
            self._held.pop(token, None)
            self._kinds.pop(token, None)

    def stop(self) -> None:
        self._stopping.set()

    @staticmethod
    def tick() -> float:
        """Seconds between rounds: a third of the lease at most (read each round: settings may change)."""
        settings = get_settings()
        return max(0.2, min(settings.lease_seconds / 3, settings.heartbeat_seconds, settings.reap_seconds))

    def run(self) -> None:
        last_beat = last_reap = 0.0
        while not self._stopping.wait(self.tick()):
            settings = get_settings()
            with self._lock:
                what = "; ".join(self._held.values()) or None
                frames = [token for token in self._held if token not in self._kinds]
                held: dict[str, list[str]] = defaultdict(list)
                for token, kind in self._kinds.items():
                    held[kind].append(token)
            try:
                extend(frames)
                if held:
                    extend_jobs(dict(held))
            except Exception as exc:  # database away: the lease may run out, the reaper then requeues
                log.warning("could not extend the lease of %s: %s", what, exc)
            now = time.monotonic()
            if self.worker_name is None:
                continue
            try:
                if now - last_beat >= settings.heartbeat_seconds:
                    heartbeat.beat(self.worker_name, self.queue, what, self.started_at)
                    last_beat = now
                if now - last_reap >= settings.reap_seconds:
                    last_reap = now
                    counts = jobs.reap()
                    if any(counts.values()):
                        log.info("reaper: %s", counts)
            except Exception as exc:
                log.warning("heartbeat or reaper round failed: %s", exc)


_pulse: Pulse | None = None
_pulse_lock = threading.Lock()


def pulse() -> Pulse:
    """This process's pulse thread, started on first use."""
    global _pulse
    with _pulse_lock:
        if _pulse is None or not _pulse.is_alive():
            _pulse = Pulse()
            _pulse.start()
        return _pulse


def start_worker(name: str, queue: str) -> None:
    """A worker process starts: heartbeats and reaping from now on, one heartbeat and one reap at once."""
    beat = pulse()
    beat.worker_name, beat.queue = name, queue
    try:
        heartbeat.beat(name, queue, None, beat.started_at)
        jobs.reap()
    except Exception as exc:
        log.warning("first heartbeat or reap failed: %s", exc)


def stop_worker() -> None:
    global _pulse
    with _pulse_lock:
        if _pulse is None:
            return
        _pulse.stop()
        name = _pulse.worker_name
        _pulse = None
    if name:
        with contextlib.suppress(Exception):
            heartbeat.forget(name)


@contextlib.contextmanager
def held(token: str, what: str, job: Job | None = None) -> Iterator[None]:
    """While the block runs, the pulse thread keeps the claim `token` alive (of frames, or of `job`'s row)."""
    beat = pulse()
    beat.hold(token, what, job)
    try:
        yield
    finally:
        beat.drop(token)


def run_job(job: Job, job_id: int, what: str, work: Callable[[int, str], T], dropped: T) -> T:
    """Run `work(job_id, token)` under a new claim the pulse keeps alive; if another worker takes the job
    over meanwhile (this claim's lease ran out: LeaseLost), stop and answer `dropped`."""
    token = new_token()
    with held(token, what, job):
        try:
            return work(job_id, token)
        except LeaseLost:
            log.warning("%s was taken over by another worker; dropped", what)
            return dropped
