"""Shared fixtures: an isolated Segue (data dir, database, settings) per test, on SQLite or PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.isolation import (
    PG_ADMIN_URL,
    SAME_ORIGIN,
    configure,
    migrate_fresh,
    reset_caches,
    truncate,
    without_reaper,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One torch thread in this process and in every worker or server a test starts: `make test` runs two test
# processes on two cores (pytest-xdist), and torch processes that each take every core slow each other 10x.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "SEGUE_WORKER_THREADS"):
    os.environ.setdefault(_variable, "1")

# Fixtures of the live stack (a real worker and broker) and of the browser tests, shared by several folders.
pytest_plugins = ["tests.support.stack", "tests.support.browser"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    name = f"segue_test_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # pragma: no cover - the machine runs PostgreSQL; .ci/run starts it
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    reset_caches()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A migrated, empty database: SQLite in the test's data dir, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        configure(monkeypatch, tmp_path / "data")
        url = f"sqlite:///{tmp_path / 'data' / 'segue.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        configure(monkeypatch, tmp_path / "data", database_url=url)
    migrate_fresh()
    if request.param == "postgres":
        truncate(url)
    yield url
    reset_caches()


@pytest.fixture
def sent_tasks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, list[int]]]:
    """Record render batches instead of sending them to a broker (for tests of the web side alone)."""
    sent: list[tuple[int, list[int]]] = []
    monkeypatch.setattr(
        "services.rendering.send_render_batch",
        lambda render_id, indices, **_options: sent.append((render_id, indices)),
    )
    return sent


@pytest.fixture
def client(database: str, sent_tasks: list[tuple[int, list[int]]], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The web side alone, in this process: its queue recorded (sent_tasks), no reaper."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    without_reaper(monkeypatch)
    # Like a browser on Segue's own page: its forms carry Segue's own Origin (app/security.py).
    with TestClient(create_app(), headers=SAME_ORIGIN) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def llm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A suggestion cache shared by the test session: the packaged SmolLM2 de-quantized once (about 30 s of
    CPU), by the first test that loads it cold (tests/engine/test_suggesters.py), then reused by the
    browser tests' servers (tests/support/browser.py links their data dir's cache here). Shared by the test
    processes of one run under pytest-xdist (their temp dirs have one parent)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "llm-cache"
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory holding the offline tiny model, built once per test session."""
    from engine.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("models")
    build_tiny_model(root / "segue-tiny", seed=0)
    return root


#: Under pytest-xdist, the folders whose files cost most are handed out first: a run ends on many small
#: files that even out the two test processes, not on a 30-second browser file one process runs alone while
#: the other has finished (testpaths in pyproject.toml keeps the fast layers first for a run in one process).
HEAVY_FIRST = ("e2e", "worker", "bench", "api", "engine", "training", "pages", "services", "project", "core")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, files marked `slow` are handed out first (the full-size Stable Diffusion file,
    three minutes of one process, then runs beside the rest instead of alone at the end of the run), then
    the folders in HEAVY_FIRST order."""
    if os.environ.get("PYTEST_XDIST_WORKER"):

        def weight(item: pytest.Item) -> tuple[bool, int]:
            parts = item.path.relative_to(config.rootpath).parts
            folder = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
            rank = HEAVY_FIRST.index(folder) if folder in HEAVY_FIRST else len(HEAVY_FIRST)
            return item.get_closest_marker("slow") is None, rank

        items.sort(key=weight)  # stable: otherwise in collection order
