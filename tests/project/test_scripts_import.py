"""Benchmark and study scripts are not run by the suite, so at least they must import (no rotted names)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_bench_and_study_script_imports() -> None:
    modules = [f"bench.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "bench")])]
    modules += [f"training.{m}" for m in ("moce_study", "fit_preview")]
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run(
        [sys.executable, "-c", code, *modules], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(modules) >= 6
