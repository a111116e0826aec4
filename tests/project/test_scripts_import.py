"""Benchmark and study scripts are not run by the suite, so at least they must import (no rotted names)."""

from __future__ import annotations

import os
import pkgutil
from pathlib import Path

from tests.support.forking import run

ROOT = Path(__file__).resolve().parents[2]


def test_every_bench_and_study_script_imports() -> None:
    modules = [f"bench.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "bench")])]
    modules += [f"training.{m}" for m in ("moce_study", "fit_preview")]
    # Forked from the zygote that has imported torch and diffusers; Segue's own modules load afresh.
    result = run("tests.support.import_all", modules, dict(os.environ), ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(modules) >= 6
