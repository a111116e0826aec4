"""Benchmarks and studies (docs/methods-and-benchmarks): scripts run as `python -m bench.<name>`."""

from __future__ import annotations

from pathlib import Path


def show(text: str, out: Path | None) -> int:
    """Print a benchmark's report and, with --out, write it there too; the script's exit status."""
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return 0
