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
    from app.db import engine_for
    from app.tables import Base
    from tests.conftest import configure, reset_caches

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

    from app.config import Settings

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
