"""A live stack for end-to-end renders: the app in-process, a real Celery worker process, a real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.forking import Forked, spawn
from tests.support.isolation import SAME_ORIGIN, configure, migrate_fresh, reset_caches, truncate

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("SEGUE_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")


@dataclass
class Stack:
    client: object
    worker: Forked
    env: dict[str, str]
    log: Path


def start_worker(env: dict[str, str], log: Path) -> Forked:
    """The same command `segue worker` runs, minus the cluster chatter a one-worker test does not need,
    forked from a process that has already imported torch and diffusers (tests/support/forking.py)."""
    from app.cli import worker_command
    from infra.config import get_settings

    python, flag, module, *args = worker_command(get_settings(), f"test-{uuid.uuid4().hex[:6]}")
    assert (python, flag) == (sys.executable, "-m")
    args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    log.write_bytes(b"")
    return spawn(module, args, env, REPO, log)


def stop(process: Forked | subprocess.Popen[bytes]) -> None:
    """End a worker in the middle of a test: SIGQUIT, Celery's cold shutdown (a warm one, SIGTERM, waits for
    the running batch; what a worker does on SIGTERM is tested where it matters: test_crashes.py,
    test_lifecycle.py)."""
    if process.poll() is None:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def discard(process: Forked | subprocess.Popen[bytes]) -> None:
    """A finished test's worker: SIGKILL, since nothing it holds outlives the test (its queue, namespace and
    data dir are the test's own). Even a cold shutdown costs seconds (the solo pool notices it at its next
    2-s poll); how workers end on a signal is what test_lifecycle.py and test_crashes.py test."""
    if process.poll() is None:
        process.kill()
    process.wait()


@pytest.fixture
def stack_factory(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_dir: Path
) -> Iterator[object]:
    """Start Segue with a given mode, database and SEGUE_* settings: stack_factory(mode='distributed',
    database='postgres', frame_store='s3://bucket')."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    started: list[tuple[Stack, TestClient]] = []

    def start(mode: str = "distributed", database: str = "sqlite", **settings: str) -> Stack:
        env_settings = {
            "mode": mode,
            "models_dir": str(models_dir),
            "render_queue": f"render-{uuid.uuid4().hex[:8]}",
            "redis_url": REDIS_URL,
            "redis_namespace": f"segue-test-{uuid.uuid4().hex[:8]}",
            "event_poll_seconds": "0.05",
            **settings,
        }
        if database == "postgres":
            env_settings["database_url"] = request.getfixturevalue("postgres_url")
        configure(monkeypatch, tmp_path / "data", **env_settings)
        migrate_fresh()
        if database == "postgres":
            truncate(env_settings["database_url"])
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        log = tmp_path / "worker.log"
        worker = start_worker(env, log)
        client = TestClient(create_app(), headers=SAME_ORIGIN)
        client.__enter__()
        stack = Stack(client=client, worker=worker, env=env, log=log)
        started.append((stack, client))
        return stack

    yield start
    for stack, client in started:
        client.__exit__(None, None, None)
        discard(stack.worker)
    reset_caches()
