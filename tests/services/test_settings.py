"""Settings: one class, env prefix SEGUE_, defaults that need no server, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from infra.config import Settings


def test_embedded_defaults_need_no_server(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.database_url == f"sqlite:///{(tmp_path / 'segue.db').resolve()}"
    assert s.frames_dir == tmp_path / "frames"
    assert s.broker_url == "filesystem://"
    assert s.models[0] == s.model and "segue-tiny" in s.models


def test_distributed_mode_uses_redis(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, mode="distributed", redis_url="redis://example:6379/3")
    assert s.broker_url == "redis://example:6379/3"


def test_environment_is_read_with_the_segue_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEGUE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SEGUE_PORT", "9123")
    monkeypatch.setenv("SEGUE_MODELS", '["segue-tiny", "runwayml/stable-diffusion-v1-5"]')
    s = Settings()
    assert s.port == 9123
    assert s.data_dir == tmp_path
    assert "runwayml/stable-diffusion-v1-5" in s.models


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [("port", 70000, "port"), ("max_size", 1004, "SEGUE_MAX_SIZE"), ("mode", "cluster", "mode")],
)
def test_bad_settings_are_refused_at_start(field: str, value: object, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        Settings(**{field: value})


def test_the_configured_model_is_always_allowed() -> None:
    s = Settings(model="my/model", models=["segue-tiny"])
    assert s.models == ["my/model", "segue-tiny"]
    assert s.default_size == 512
    assert Settings(model="segue-tiny").default_size == 64
