"""SEGUE_DEVICE: a worker asked for a GPU this machine lacks says so in one line at start, not a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.support.forking import run
from tests.support.isolation import configure
from tests.support.stack import REPO


@pytest.mark.parametrize(
    ("env", "line"),
    [
        pytest.param(
            {"SEGUE_DEVICE": "cuda"},
            "segue worker: SEGUE_DEVICE=cuda but this machine has no usable CUDA device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
        ),
        ({"SEGUE_DEVICE": "cpu", "SEGUE_LORA": "/nowhere/lcm.safetensors"}, "segue worker: SEGUE_LORA="),
    ],
)
def test_a_worker_asked_for_what_this_machine_lacks_exits_with_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], line: str
) -> None:
    from app.cli import worker_command
    from infra.config import get_settings
    from worker.celery_app import EXIT_NO_DEVICE

    configure(monkeypatch, tmp_path / "data", mode="embedded")
    _python, _m, module, *args = worker_command(get_settings(), "device-test")
    result = run(module, args, {**os.environ, **env}, REPO, timeout=120)  # forked: torch imported already
    assert result.returncode == EXIT_NO_DEVICE, result.stderr[-2000:]
    lines = [text for text in result.stderr.splitlines() if text.startswith("segue worker:")]
    assert len(lines) == 1 and lines[0].startswith(line), result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout


def test_segue_device_and_its_older_name_both_set_the_worker_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.config import get_settings

    configure(monkeypatch, tmp_path / "data")
    assert get_settings().worker_device == "auto"
    monkeypatch.setenv("SEGUE_DEVICE", "cuda:1")
    get_settings.cache_clear()
    assert get_settings().worker_device == "cuda:1"
    monkeypatch.delenv("SEGUE_DEVICE")
    monkeypatch.setenv("SEGUE_WORKER_DEVICE", "cpu")
    get_settings.cache_clear()
    assert get_settings().worker_device == "cpu"
