"""`segue run` refuses to start with a message a person can act on, before anything else starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import _check_writable

REPO = Path(__file__).resolve().parents[2]


def test_a_busy_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "SEGUE_PORT": str(port), "SEGUE_DATA_DIR": str(tmp_path / "data")}
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "run"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"port {port} is in use" in result.stderr and "SEGUE_PORT" in result.stderr
    assert "Segue is up" not in result.stdout
    assert not (tmp_path / "data" / "segue.db").exists()  # nothing was started or migrated


def test_an_unwritable_data_dir_is_named() -> None:
    target = Path("/proc/segue-data")  # no process may create a directory here, root included
    with pytest.raises(
        SystemExit, match="the data directory /proc/segue-data is not writable.*SEGUE_DATA_DIR"
    ):
        _check_writable(target)


def test_an_unreachable_object_store_is_named_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {
        **os.environ,
        "SEGUE_DATA_DIR": str(tmp_path / "data"),
        "SEGUE_FRAME_STORE": "s3://segue-frames",
        "SEGUE_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "SEGUE_S3_ACCESS_KEY_ID": "x",
        "SEGUE_S3_SECRET_ACCESS_KEY": "y",
    }
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "s3://segue-frames/" in result.stderr and f"127.0.0.1:{port}" in result.stderr
    assert "SEGUE_FRAME_STORE" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "segue.db").exists()  # nothing was migrated


def test_a_bad_frame_store_setting_is_named(tmp_path: Path) -> None:
    env = {**os.environ, "SEGUE_DATA_DIR": str(tmp_path / "data"), "SEGUE_FRAME_STORE": "ftp://frames"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "SEGUE_FRAME_STORE: must be empty or 'local'" in result.stderr and "s3://bucket" in result.stderr
