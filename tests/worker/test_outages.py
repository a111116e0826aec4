"""Outages (issue 13, findings 3 and 11): Redis away for seconds, the database away for a moment, no worker.

Redis is a private `redis-server` each test starts and kills (the shared one on 6379 is never touched),
without persistence, so it comes back empty: the database is the truth, and the batches it knows are
unfinished are queued again. The database outage is PostgreSQL refusing connections to the test's own
database (ALLOW_CONNECTIONS false, its sessions terminated), then accepting them again.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import stack as live_stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.redis

FAST = {"SEGUE_LEASE_SECONDS": "4", "SEGUE_REAP_SECONDS": "1", "SEGUE_HEARTBEAT_SECONDS": "1"}


class PrivateRedis:
    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.folder = folder
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        wait_for(lambda: _pings(redis, self.url), timeout=20, interval=0.05, what="redis-server to start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def _pings(redis: Any, url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.2).ping())
    except Exception:
        return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def _transition(client: Any, **overrides: Any) -> dict[str, Any]:
    body = {"start_prompt": "a futuristic cityscape", "end_prompt": "a girl in a magical forest", **overrides}
    response = client.post("/api/transitions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.slow
def test_a_redis_outage_of_seconds_pauses_a_render_that_then_finishes_by_itself(
    stack_factory: Any, private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(live_stack, "REDIS_URL", private_redis.url)
    stack = stack_factory(mode="distributed", database="sqlite")
    client = stack.client
    transition = _transition(client, frames=8, steps=10, batch_size=2, width=96, height=96, seed=2)
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
    wait_for(
        lambda: any(
            f["status"] == "running" for f in client.get(f"/api/renders/{render_id}").json()["frames"]
        ),
        interval=0.05,
        what="a batch to start",
    )

    private_redis.kill()  # queue, unacknowledged batches and event streams all gone
    health = client.get("/healthz")
    assert health.status_code == 503 and "broker" in health.json()["down"]
    assert health.json()["status"] == "degraded"
    started = client.post(f"/api/transitions/{transition['id']}/renders")
    assert started.status_code == 503 and "render queue is unreachable" in started.json()["detail"]
    time.sleep(5)
    assert client.get(f"/api/renders/{render_id}").json()["status"] == "running"  # paused, not failed
    private_redis.start()  # back, and empty

    detail = wait_for(
        lambda: (d := client.get(f"/api/renders/{render_id}").json())["status"] in ("done", "failed") and d,
        timeout=180,
        what="the render to end after the outage",
    )
    assert detail["status"] == "done", (detail.get("error"), stack.log.read_text()[-3000:])
    assert detail["stats"]["frames_computed"] == 8  # every frame rendered exactly once
    assert [r["status"] for r in client.get(f"/api/transitions/{transition['id']}/renders").json()] == [
        "done"
    ]
    wait_for(lambda: client.get("/healthz").status_code == 200, timeout=30, what="/healthz to be ok again")


def test_starting_a_render_while_the_broker_is_down_is_a_503_and_leaves_nothing_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_redis: PrivateRedis, models_dir: Path
) -> None:
    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from app.cli import migrate
    from app.main import create_app
    from infra.db import new_session
    from infra.tables import Render
    from tests.support.isolation import configure, reset_caches

    configure(
        monkeypatch,
        tmp_path / "data",
        mode="distributed",
        redis_url=private_redis.url,
        models_dir=str(models_dir),
        render_queue="render-outage",
    )
    migrate()
    try:
        with TestClient(create_app()) as client:
            transition = _transition(client, frames=4, steps=2)
            private_redis.kill()
            response = client.post(f"/api/transitions/{transition['id']}/renders")
            assert response.status_code == 503, response.text
            assert "render queue is unreachable" in response.json()["detail"]
            assert response.headers["Retry-After"]
            page = client.post(f"/transitions/{transition['id']}/render")
            assert page.status_code == 200 and "render queue is unreachable" in page.text
            with new_session() as db:
                assert db.scalar(select(func.count()).select_from(Render)) == 0  # nothing left queued

            private_redis.start()
            again = client.post(f"/api/transitions/{transition['id']}/renders")
            assert again.status_code == 202 and again.json()["status"] == "queued"
    finally:
        reset_caches()


@pytest.mark.postgres
@pytest.mark.parametrize("database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_the_database_away_for_a_moment_is_a_503_then_recovers_without_a_restart(
    client: Any, database: str
) -> None:
    import sqlalchemy

    from tests.support.isolation import PG_ADMIN_URL

    name = database.rsplit("/", 1)[-1]
    created = _transition(client, frames=2)
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
        away = client.get(f"/api/transitions/{created['id']}")
        assert away.status_code == 503 and "database is unreachable" in away.json()["detail"]
        assert (
            client.post("/api/transitions", json={"start_prompt": "a", "end_prompt": "b"}).status_code == 503
        )
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "down"
        assert "database" in health.json()["down"]
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()
    back = client.get(f"/api/transitions/{created['id']}")
    assert back.status_code == 200 and back.json()["id"] == created["id"]
    listed = client.get("/api/transitions")
    assert listed.status_code == 200 and len(listed.json()) == 1  # nothing half-saved meanwhile


@pytest.mark.parametrize("mode", ["distributed", "embedded"])
def test_healthz_names_no_worker_alive(
    stack_factory: Any, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGUE_HEARTBEAT_SECONDS", "1")
    stack = stack_factory(mode=mode, database="sqlite")
    client = stack.client
    ok = wait_for(
        lambda: (r := client.get("/healthz")).status_code == 200 and r.json(),
        timeout=60,
        what="the worker's first heartbeat",
    )
    assert ok["status"] == "ok" and ok["workers"]["alive"] == 1 and ok["down"] == []
    stack.worker.send_signal(signal.SIGKILL)
    stack.worker.wait()
    degraded = wait_for(
        lambda: (r := client.get("/healthz")).status_code == 503 and r.json(),
        timeout=15,
        what="/healthz to notice the dead worker",
    )
    assert degraded["status"] == "degraded" and degraded["down"] == ["no worker alive"]
    assert json.dumps(degraded)  # a plain JSON body
