"""The pure helpers of bench/evaluations.py and a small run of bench/profile.py."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from bench.evaluations import psnr, ssim
from tests.support.forking import run

ROOT = Path(__file__).resolve().parents[2]


def test_ssim_and_psnr_are_one_and_infinite_for_the_same_picture_and_fall_with_noise() -> None:
    rng = np.random.default_rng(0)
    picture = rng.random((32, 32))
    assert ssim(picture, picture) == 1.0 and psnr(picture, picture) == float("inf")
    slightly = np.clip(picture + rng.normal(0, 0.02, picture.shape), 0, 1)
    much = np.clip(picture + rng.normal(0, 0.2, picture.shape), 0, 1)
    assert 1.0 > ssim(picture, slightly) > ssim(picture, much) > 0.0
    assert psnr(picture, slightly) > psnr(picture, much) > 10


def test_the_profile_accounts_for_every_stage_of_a_render(tmp_path: Path) -> None:
    out = tmp_path / "profile.md"
    args = ["--model", "segue-tiny", "--frames", "4", "--steps", "2", "--batch", "2", "--out", str(out)]
    result = run("bench.profile", args, dict(os.environ), ROOT, timeout=300)  # forked: torch is imported
    assert result.returncode == 0, result.stderr[-3000:]
    table = out.read_text()
    rows = dict(re.findall(r"^\| ([^|]+?) \| ([\d.]+) \|", table, flags=re.M))
    assert float(rows["U-Net forwards"]) > 0 and float(rows["VAE decode"]) > 0
    for stage in ("PNG encode", "frame store writes", "cancel checks (database)", "events", "scoring"):
        assert stage in rows
    # 4 frames: 4 PNGs, 4 store writes; 2 batches x 2 steps = 4 U-Net calls.
    assert re.search(r"^\| PNG encode \| [\d.]+ \| [\d.]+% \| 4 \|", table, flags=re.M)
    assert re.search(r"^\| frame store writes \| [\d.]+ \| [\d.]+% \| 4 \|", table, flags=re.M)
    assert re.search(r"^\| U-Net forwards \| [\d.]+ \| [\d.]+% \| 4 \|", table, flags=re.M)
    assert re.search(r"\*\*model share\*\* \(U-Net \+ VAE\) / wall: \*\*[\d.]+%\*\*", table)
