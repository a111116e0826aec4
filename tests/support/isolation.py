"""An isolated Segue per test: its own data dir and settings, caches cleared between tests, and an emptied
PostgreSQL database."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

#: What a browser sends with a form posted from one of Segue's own pages (TestClient's base URL).
SAME_ORIGIN = {"Origin": "http://testserver"}
PG_ADMIN_URL = os.environ.get("SEGUE_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _stop_pulse() -> None:
    """End the lease pulse a test's in-process worker code started, and wait for it: a pulse thread that is
    reading the settings while a test changes them would cache the old ones after the cache is cleared."""
    lease = sys.modules.get("worker.lease")
    if lease is None:
        return
    pulse = lease._pulse
    lease.stop_worker()
    if pulse is not None:
        pulse.join(timeout=10)


def reset_caches() -> None:
    from infra import bus, queue, storage
    from infra.config import get_settings
    from infra.db import dispose_engines

    _stop_pulse()
    get_settings.cache_clear()
    dispose_engines()
    bus._bus_for.cache_clear()
    storage._s3_store.cache_clear()
    queue._client = None


def configure(monkeypatch: pytest.MonkeyPatch, data_dir: Path, **env: str) -> None:
    monkeypatch.setenv("SEGUE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SEGUE_ENV", "test")
    # The random tiny model keeps web and worker tests fast and independent of the shipped weights.
    monkeypatch.setenv("SEGUE_MODEL", "segue-tiny")
    for key, value in env.items():
        monkeypatch.setenv(f"SEGUE_{key.upper()}", value)
    reset_caches()


def without_reaper(monkeypatch: pytest.MonkeyPatch) -> None:
    """The web app built in this test starts no reaper: for tests of the web side alone, whose recorded queue
    leaves no lease to take back. Its first round, at start-up, costs some 40 ms of one core a test (a new
    database engine compiling its dozen statements), half of what a test of one request costs, and it would
    write to the database while the test reads it. Reaping has its own tests (tests/worker/test_job_leases.py,
    tests/worker/test_crashes.py) and runs in every live stack."""

    async def no_reaper(interval: float | None = None) -> None:
        return None

    monkeypatch.setattr("services.jobs.reaper_loop", no_reaper)


def truncate(url: str) -> None:
    """Empty every table of Segue's and restart its ids at 1 (tests find "id 1"). DELETE, children first,
    not TRUNCATE: a test leaves a few rows, and TRUNCATE gives each of the tables, their indexes and their
    sequences new files, 0.2 s a test (some 240 times a run) against a few milliseconds."""
    from infra.db import engine_for
    from infra.tables import Base

    with engine_for(url).begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.exec_driver_sql(f'DELETE FROM "{table.name}"')
        sequences = conn.exec_driver_sql(
            "SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = current_schema()"
        ).scalars()
        for sequence in sequences:
            conn.exec_driver_sql(f'ALTER SEQUENCE "{sequence}" RESTART')


_migrated_template: Path | None = None


def migrate_fresh() -> None:
    """Bring the configured database to the newest schema. A new SQLite file is a copy of one this test
    process migrated once (Alembic's nineteen migrations cost 0.4 s a test); any other database is migrated
    (PostgreSQL is at head after the session's first test, and emptied by the caller)."""
    from app.cli import migrate
    from infra.config import get_settings
    from infra.db import dispose_engines

    global _migrated_template
    url = get_settings().database_url
    target = Path(url.split("///", 1)[1]) if url.startswith("sqlite:///") else None
    if target is None or target.exists():
        migrate()
        return
    if _migrated_template is None:
        template = Path(tempfile.mkdtemp(prefix="segue-migrated-")) / "segue.db"
        migrate(f"sqlite:///{template}")
        dispose_engines()  # its last connection closed: the file holds everything (no -wal left beside it)
        _migrated_template = template
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_template, target)


def file_broker(root: Path, **options: object) -> dict[str, object]:
    """kombu transport options for an embedded-mode broker folder of the test's own (Segue's filesystem
    transport, infra/fsqueue.py, registered by importing infra.queue); `options` add to them."""
    import infra.queue  # noqa: F401  (registers Segue's transport for filesystem://)

    folder = root / "out"
    folder.mkdir(exist_ok=True)
    return {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(root / "control"),
        "store_processed": False,
        **options,
    }
