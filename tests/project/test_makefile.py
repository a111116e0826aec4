"""`make help` lists every target of the Makefile and of the fragments it includes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def targets(path: Path) -> set[str]:
    """The targets a person may call: rules whose name is a plain word (not a file path or a variable)."""
    return {m.group(1) for m in re.finditer(r"^([a-z][a-z-]*):", path.read_text(), re.MULTILINE)}


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_help_lists_every_target() -> None:
    declared = targets(REPO / "Makefile") | targets(REPO / "training" / "Makefile.fragment")
    assert {"run", "test", "test-quick", "help", "train-mini"} <= declared
    help_run = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True)
    listed = set(re.findall(r"^make (\S+) +- \S", help_run.stdout, re.MULTILINE))
    assert listed == declared, f"missing from make help: {declared - listed}; unknown: {listed - declared}"
