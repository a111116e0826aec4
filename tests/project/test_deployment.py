"""The deployment files: the migration matches the models, and the compose file is valid."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_migrations_create_exactly_the_models_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from app.cli import migrate
    from infra.db import engine_for
    from infra.tables import Base
    from tests.support.isolation import configure, reset_caches

    configure(monkeypatch, tmp_path)
    url = f"sqlite:///{tmp_path / 'segue.db'}"
    migrate(url)
    with engine_for(url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    reset_caches()
    assert diff == [], f"models and migrations disagree; add a migration: {diff}"
    assert mode == "wal"


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="Debian's docker-compose parses the file; .ci/run installs it",
)
def test_compose_file_is_valid() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def test_compose_runs_migrations_before_web_and_workers_on_gpus() -> None:
    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"redis", "postgres", "migrate", "web", "worker"}
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    device = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["capabilities"] == ["gpu"]
    assert "healthcheck" in services["redis"] and "healthcheck" in services["postgres"]


def test_compose_web_and_workers_share_frames_only_through_the_object_store() -> None:
    import yaml

    from infra.config import Settings

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "healthcheck" in services["minio"]
    assert services["migrate"]["depends_on"]["minio"]["condition"] == "service_healthy"  # it makes the bucket
    volumes = {name: set(services[name].get("volumes", [])) for name in ("web", "worker")}
    assert not volumes["web"] & volumes["worker"], "web and workers must not need a shared disk"
    for name in ("web", "worker", "migrate"):
        env = {k: str(v) for k, v in services[name]["environment"].items() if k.startswith("SEGUE_")}
        assert env["SEGUE_FRAME_STORE"].startswith("s3://")
        assert env["SEGUE_S3_ENDPOINT_URL"] == "http://minio:9000"
        # The settings accept what compose passes (pattern of frame_store, field names).
        Settings(**{k.removeprefix("SEGUE_").lower(): v for k, v in env.items() if "${" not in v})


def test_upgrading_and_downgrading_a_sqlite_database_keeps_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrations that alter a parent table must not cascade-delete its children or lose AUTOINCREMENT."""
    from alembic import command
    from alembic.config import Config

    from infra.config import REPO_ROOT
    from infra.db import engine_for
    from tests.support.isolation import configure, reset_caches

    configure(monkeypatch, tmp_path)
    url = f"sqlite:///{tmp_path / 'segue.db'}"
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.attributes["configure_logging"] = False
    config.attributes["database_url"] = url

    def counts() -> dict[str, int]:
        with engine_for(url).connect() as conn:
            return {
                table: conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
                for table in ("transitions", "keyframes", "renders", "frames")
            }

    def fill() -> None:
        """One transition, render and frame, every required column given a value of its type."""
        samples = {"INT": 1, "BOOL": 0, "FLOAT": 0.5, "REAL": 0.5, "DATE": "2026-01-01 00:00", "JSON": "{}"}
        with engine_for(url).begin() as conn:
            run = conn.exec_driver_sql
            ids: dict[str, int] = {}
            for table, parent in (("transitions", None), ("renders", "transition"), ("frames", "render")):
                values: dict[str, object] = {}
                for _, name, kind, notnull, default, pk in run(f"PRAGMA table_info({table})"):
                    if pk or not notnull or default is not None:
                        continue
                    sample = next((v for k, v in samples.items() if k in kind.upper()), "x")
                    values[name] = ids[parent] if parent and name == f"{parent}_id" else sample
                columns = ", ".join(f'"{c}"' for c in values)
                marks = ", ".join("?" for _ in values)
                cursor = run(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(values.values()))
                ids[table.removesuffix("s")] = int(cursor.lastrowid)

    try:
        command.upgrade(config, "0008")
        fill()
        before = counts()
        assert before["renders"] == 1 and before["frames"] == 1
        command.upgrade(config, "head")
        assert counts() == before
        command.downgrade(config, "0008")
        assert counts() == before
        command.upgrade(config, "head")
        assert counts() == before
        with engine_for(url).connect() as conn:
            schema = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'renders'").scalar_one()
        assert "AUTOINCREMENT" in schema and "link_id" in schema
    finally:
        reset_caches()
