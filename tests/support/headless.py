"""`segue render` run from a shell, as a user runs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.forking import run


def segue_render(tmp_path: Path, models_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`segue render ...` as a user runs it (app/cli.py hands over to worker/headless.py)."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "SEGUE_WORKER_THREADS": "1",
        "SEGUE_MODELS_DIR": str(models_dir),
        "SEGUE_DATA_DIR": str(tmp_path / "data"),
    }
    # Forked from a process that has imported torch and diffusers already (tests/support/forking.py).
    return run("app.cli", ["render", *args], env, tmp_path, timeout=300)
