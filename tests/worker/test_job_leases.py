"""Exports, suggestions, switch step searches, planning renders and reading a study's U-Net blocks
are held under leases like frames.

A job's row is claimed with one conditional UPDATE (worker/lease.py `claim_job`): a second copy takes
nothing. The worker's pulse extends the lease while the job runs; once it runs out (the worker died) the
reaper (services/jobs.py) queues the job again, and after max_attempts takes fails it with a reason
a person can read. Each test runs on SQLite and PostgreSQL; the last ones run a real worker process.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from tests.support.isolation import without_reaper
from tests.support.waiting import wait_for

KINDS = ["export", "suggestions", "switch step search", "planning", "autofix", "study blocks"]
DEAD = "d" * 32  # the token of a worker that died


@pytest.fixture
def sends(database: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record what the reaper queues (per job kind) instead of sending it; messages wait in the queue."""
    from services import jobs

    sent: list[tuple[str, int]] = []
    for job in jobs.JOBS.values():
        monkeypatch.setattr(
            f"infra.queue.{job.sender}", lambda job_id, kind=job.kind: sent.append((kind, job_id))
        )
    monkeypatch.setattr("infra.queue.queue_depth", lambda: 1)
    monkeypatch.setattr(jobs, "_suspects", set())
    return sent


def _ago(seconds: float) -> Any:
    from infra.tables import utcnow

    return utcnow() - timedelta(seconds=seconds)


def make(
    kind: str, status: str = "running", token: str | None = DEAD, seconds_left: float = -5, attempts: int = 1
) -> int:
    """A job row of `kind`; by default left running by a dead worker (its lease ran out 5 s ago)."""
    from infra.db import new_session
    from infra.tables import (
        Autofix,
        ConceptSearch,
        Export,
        Render,
        Study,
        StudyBlocks,
        Suggestion,
        Transition,
    )
    from services.exports import ExportOptions, file_name

    lease = {
        "status": status,
        "lease_token": token,
        "leased_until": _ago(-seconds_left) if token else None,
        "attempts": attempts,
    }
    with new_session() as db:
        transition = Transition(model="segue-tiny", title="leases")
        db.add(transition)
        db.flush()
        if kind == "planning":
            row: Any = Render(
                transition_id=transition.id, transition_version=1, params={}, model="segue-tiny", **lease
            )
        elif kind == "export":
            render = Render(
                transition_id=transition.id,
                transition_version=1,
                params={},
                model="segue-tiny",
                status="done",
            )
            db.add(render)
            db.flush()
            options = ExportOptions(format="gif").normalized()
            key = options.cache_key(render.id)
            row = Export(
                render_id=render.id,
                format="gif",
                options=options.model_dump(mode="json"),
                cache_key=key,
                file_name=file_name(options, key),
                **lease,
            )
        elif kind == "study blocks":
            study = Study(title="leases", tasks=["triplets"], render_ids=[])
            db.add(study)
            db.flush()
            row = StudyBlocks(study_id=study.id, **lease)
        elif kind == "autofix":
            row = Autofix(transition_id=transition.id, kind="autopilot", rounds=[], proposals=[], **lease)
        elif kind == "suggestions":
            row = Suggestion(
                transition_id=transition.id, mode="bridge", count=2, items=[], details={}, **lease
            )
        else:
            row = ConceptSearch(
                transition_id=transition.id,
                input_key=uuid.uuid4().hex,
                inputs={},
                trace=[],
                details={},
                **lease,
            )
        db.add(row)
        db.commit()
        return int(row.id)


def load(kind: str, job_id: int) -> Any:
    from infra.db import new_session
    from services.jobs import JOBS

    with new_session() as db:
        return db.get(JOBS[kind].table, job_id)


def expire(kind: str, job_id: int) -> None:
    """The holder died: its lease runs out without being extended."""
    from infra.db import new_session
    from services.jobs import JOBS

    table = JOBS[kind].table
    with new_session() as db:
        db.execute(update(table).where(table.id == job_id).values(leased_until=_ago(1)))
        db.commit()


def claim(kind: str, job_id: int, token: str) -> bool:
    from infra.db import new_session
    from services.jobs import JOBS
    from worker import lease

    with new_session() as db:
        return lease.claim_job(db, JOBS[kind], job_id, token)


# ---------------------------------------------------------------- the reaper


@pytest.mark.parametrize("kind", KINDS)
def test_a_dead_workers_job_is_queued_again_and_failed_after_max_attempts(
    kind: str, sends: list[tuple[str, int]]
) -> None:
    from infra.config import get_settings
    from services.jobs import JOBS, reap

    assert get_settings().max_attempts == 3
    job_id = make(kind)  # take 1: its worker died

    for take in (2, 3):
        counts = reap()
        assert counts["jobs_requeued"] == 1 and counts["jobs_failed"] == 0, counts
        row = load(kind, job_id)
        assert (row.status, row.lease_token, row.attempts) == ("queued", None, take - 1)
        assert sends == [(kind, job_id)] * (take - 1)
        assert reap()["jobs_requeued"] == 0  # queued once: the next round leaves it to its message
        # The message is taken by another worker, which dies too.
        assert claim(kind, job_id, f"take{take}".ljust(32, "x"))
        row = load(kind, job_id)
        assert (row.status, row.attempts) == ("running", take)
        expire(kind, job_id)

    counts = reap()
    assert counts["jobs_failed"] == 1 and counts["jobs_requeued"] == 0, counts
    row = load(kind, job_id)
    assert row.status == "failed" and row.lease_token is None and row.finished_at is not None
    assert row.error == JOBS[kind].reason(3)
    assert (
        "stopped 3 times without finishing" in row.error and "crashed, killed or out of memory" in row.error
    )
    if kind == "export":
        assert row.error == (
            "the worker running this export stopped 3 times without finishing it (crashed, killed or out "
            "of memory); ask again to retry"
        )
    assert len(sends) == 2 and reap()["jobs_failed"] == 0  # failed once, never sent again
    assert not claim(kind, job_id, "late".ljust(32, "x"))  # a late message finds nothing to take


def test_a_failed_job_asked_again_counts_its_takes_from_one(sends: list[tuple[str, int]]) -> None:
    from infra.db import new_session
    from infra.tables import Export
    from services.jobs import reap

    export_id = make("export", attempts=3)
    assert reap()["jobs_failed"] == 1
    with new_session() as db:  # what request_export does with a failed export asked for again
        db.execute(update(Export).where(Export.id == export_id).values(status="queued", error=None))
        db.commit()
    assert claim("export", export_id, "again".ljust(32, "x"))
    assert load("export", export_id).attempts == 1


def test_a_queue_that_is_away_leaves_lost_jobs_for_the_next_round(
    sends: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.jobs import JOBS, reap

    ids = {kind: make(kind) for kind in KINDS}

    def away(_job_id: int) -> None:
        raise ConnectionError("Redis is away")

    for job in JOBS.values():
        monkeypatch.setattr(f"infra.queue.{job.sender}", away)
    counts = reap()
    assert counts["jobs_requeued"] == 0 and counts["jobs_failed"] == 0
    for kind, job_id in ids.items():  # still lost, not queued in no message
        row = load(kind, job_id)
        assert row.status == "running" and row.attempts == 1, (kind, row.status)
    monkeypatch.undo()  # the queue is back
    for job in JOBS.values():
        monkeypatch.setattr(
            f"infra.queue.{job.sender}", lambda job_id, kind=job.kind: sends.append((kind, job_id))
        )
    monkeypatch.setattr("infra.queue.queue_depth", lambda: 1)
    assert reap()["jobs_requeued"] == len(KINDS)
    assert sorted(sends) == sorted(ids.items())
    assert all(load(kind, job_id).status == "queued" for kind, job_id in ids.items())


def test_queued_jobs_that_no_message_names_are_sent_again(
    sends: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.jobs import reap

    ids = {kind: make(kind, status="queued", token=None, attempts=0) for kind in KINDS}
    monkeypatch.setattr("infra.queue.queue_depth", lambda: 0)  # the broker came back empty
    assert reap()["orphans"] == 0 and sends == []  # seen once: maybe a worker is taking them right now
    assert reap()["orphans"] == len(KINDS)
    assert sorted(sends) == sorted(ids.items())


def test_renders_that_are_planned_or_rendering_are_no_planning_jobs(sends: list[tuple[str, int]]) -> None:
    from infra.db import new_session
    from infra.tables import Frame
    from services.jobs import reap

    rendering = make("planning", token=None)  # a running render whose frames hold the leases
    planned = make("planning", status="queued", token=None, attempts=0)
    with new_session() as db:
        db.add(
            Frame(
                render_id=planned, index=0, t=0.0, segment=0, local_t=0.0, prompt_a="a", prompt_b="b", key="k"
            )
        )
        db.commit()
    assert not claim("planning", planned, "p".ljust(32, "x"))
    assert not claim("planning", rendering, "p".ljust(32, "x"))
    counts = reap()
    assert counts["jobs_requeued"] == 0 and counts["jobs_failed"] == 0
    assert load("planning", rendering).status == "running" and sends == []


# ---------------------------------------------------------------- claims


@pytest.mark.parametrize("kind", KINDS)
def test_a_held_job_is_claimed_once_and_only_its_holder_writes_the_result(
    kind: str, sends: list[tuple[str, int]]
) -> None:
    from services.jobs import JOBS
    from worker import lease

    job = JOBS[kind]
    first, second, third = (name.ljust(32, "x") for name in ("first", "second", "third"))
    job_id = make(kind, status="queued", token=None, attempts=0)
    assert claim(kind, job_id, first)
    assert not claim(kind, job_id, second)  # a redelivered message: the job is held
    row = load(kind, job_id)
    assert (row.status, row.lease_token, row.attempts) == ("running", first, 1)

    # The first holder stalls past its lease; a requeued copy takes the job over.
    expire(kind, job_id)
    assert claim(kind, job_id, second) and load(kind, job_id).attempts == 2
    with pytest.raises(lease.LeaseLost):
        lease.write_job(job, job_id, first, error="progress of a worker that lost its lease")
    assert not lease.finish_job(job, job_id, first, "failed", error="too late")
    row = load(kind, job_id)
    assert (row.status, row.lease_token, row.error) == ("running", second, None)

    assert lease.finish_job(job, job_id, second, "done")
    row = load(kind, job_id)
    assert (row.status, row.lease_token, row.leased_until) == ("done", None, None)
    assert not claim(kind, job_id, third)  # finished: nothing to take


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_copy_of_the_task_leaves_a_held_job_alone(kind: str, sends: list[tuple[str, int]]) -> None:
    """The worker's own entry points claim first: a copy of a running job's message does nothing."""
    from worker.autofix import run_autofix
    from worker.block_features import run_study_blocks
    from worker.exports import run_export
    from worker.moce import run_search
    from worker.planning import run_plan
    from worker.suggestions import run_suggestions

    run = {
        "export": run_export,
        "suggestions": run_suggestions,
        "switch step search": run_search,
        "autofix": run_autofix,
        "study blocks": run_study_blocks,
    }.get(kind, run_plan)
    job_id = make(kind, token="alive".ljust(32, "x"), seconds_left=60)
    before = load(kind, job_id)
    run(job_id)
    after = load(kind, job_id)
    assert (after.status, after.lease_token, after.attempts) == ("running", before.lease_token, 1)
    assert after.leased_until == before.leased_until


def test_a_live_jobs_lease_is_extended_by_the_pulse_and_not_reaped(
    sends: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.config import get_settings
    from infra.tables import utcnow
    from services.jobs import JOBS, reap
    from worker import lease

    monkeypatch.setenv("SEGUE_LEASE_SECONDS", "1.5")
    get_settings.cache_clear()
    lease.stop_worker()  # a pulse started by an earlier test sleeps by its settings: start one with these
    ids = {kind: make(kind, status="queued", token=None, attempts=0) for kind in KINDS}
    tokens = {kind: lease.new_token() for kind in KINDS}
    try:
        with contextlib.ExitStack() as stack:
            for kind, job_id in ids.items():
                assert claim(kind, job_id, tokens[kind])
                stack.enter_context(lease.held(tokens[kind], f"{kind} {job_id}", JOBS[kind]))
            time.sleep(3.5)  # more than twice the lease
            counts = reap()
            assert counts["jobs_requeued"] == 0 and counts["jobs_failed"] == 0, counts
            for kind, job_id in ids.items():
                row = load(kind, job_id)
                assert (row.status, row.lease_token) == ("running", tokens[kind])
                assert row.leased_until > utcnow(), f"the lease of the {kind} was not extended"
        # Held no more (as if its worker died): the leases run out and the reaper takes the jobs back. They
        # need not all run out before one reap call, so reap until every job is queued again, summing what
        # each call reports: each job is taken back exactly once, and nothing is failed.
        taken: dict[str, int] = {"jobs_requeued": 0, "jobs_failed": 0}

        def all_queued_again() -> bool:
            for key, value in reap().items():
                if key in taken:
                    taken[key] += value
            return all(load(kind, job_id).status == "queued" for kind, job_id in ids.items())

        wait_for(all_queued_again, timeout=30, what="every lease to run out and its job to be queued again")
        assert taken == {"jobs_requeued": len(KINDS), "jobs_failed": 0}, taken
        assert sorted(sends) == sorted(ids.items())
    finally:
        lease.stop_worker()


# ---------------------------------------------------------------- a live worker

FAST_RECOVERY = {"SEGUE_LEASE_SECONDS": "4", "SEGUE_REAP_SECONDS": "1", "SEGUE_HEARTBEAT_SECONDS": "1"}


@pytest.mark.redis
@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_live_worker_takes_over_and_finishes_an_export_a_dead_worker_left_running(
    stack_factory: Any, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from PIL import Image

    from infra.db import new_session
    from infra.tables import Export
    from services.exports import ExportOptions, file_name

    for key, value in FAST_RECOVERY.items():
        monkeypatch.setenv(key, value)

    without_reaper(monkeypatch)  # the web app reaps too: here only the worker's own pulse does
    stack = stack_factory(mode="distributed", database=database)
    client = stack.client
    transition = client.post(
        "/api/transitions",
        json={
            "start_prompt": "a city",
            "end_prompt": "a forest",
            "frames": 4,
            "steps": 2,
            "width": 64,
            "height": 64,
            "batch_size": 4,
        },
    ).json()
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
    wait_for(
        lambda: client.get(f"/api/renders/{render_id}").json()["status"] == "done",
        timeout=120,
        what="the render",
    )

    # An export its worker took (attempt 1) and died on: running, under a lease that ran out 1 s ago. The
    # live worker's reaper queues it again and the worker claims it (attempt 2) and finishes it.
    options = ExportOptions(format="gif").normalized()
    key = options.cache_key(render_id)
    with new_session() as db:
        export = Export(
            render_id=render_id,
            format="gif",
            options=options.model_dump(mode="json"),
            cache_key=key,
            file_name=file_name(options, key),
            status="running",
            progress=0.4,
            lease_token=DEAD,
            leased_until=_ago(1),
            attempts=1,
        )
        db.add(export)
        db.commit()
        export_id = export.id
    lost_at = time.monotonic()
    done = wait_for(
        lambda: (e := client.get(f"/api/exports/{export_id}").json())["status"] in ("done", "failed") and e,
        timeout=30,
        interval=0.2,
        what="the lost export to be taken over",
    )
    assert done["status"] == "done", (done, stack.log.read_text()[-3000:])
    took = time.monotonic() - lost_at
    row = load("export", export_id)
    assert (row.attempts, row.lease_token) == (2, None)  # taken once more, by the live worker
    with Image.open(io.BytesIO(client.get(done["url"]).content)) as gif:
        assert gif.n_frames == 4
    assert took < 20, f"the lost export took {took:.1f} s to finish"
    print(f"lost export finished {took:.1f} s after its lease ran out")


def test_an_autopilot_waiting_for_its_rounds_render_is_no_job_until_the_render_ends(
    sends: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.db import new_session
    from infra.tables import Autofix, Render
    from services.jobs import reap

    job_id = make("autofix", status="waiting", token=None, attempts=1)
    with new_session() as db:
        row = db.get(Autofix, job_id)
        render = Render(
            transition_id=row.transition_id,
            transition_version=1,
            params={},
            model="segue-tiny",
            status="running",
        )
        db.add(render)
        db.flush()
        row.render_id = render.id
        db.commit()
        render_id = render.id
    monkeypatch.setattr("infra.queue.queue_depth", lambda: 0)
    assert reap()["orphans"] == 0 and reap()["orphans"] == 0 and sends == []  # the render is running
    assert not claim("autofix", job_id, "a" * 32)
    with new_session() as db:
        db.execute(update(Render).where(Render.id == render_id).values(status="done"))
        db.commit()
    # The render's end sends the next step; if that message was lost, the reaper sends it
    reap()
    assert reap()["orphans"] == 1 and sends == [("autofix", job_id)]
    assert claim("autofix", job_id, "b" * 32)
    assert load("autofix", job_id).status == "running"
