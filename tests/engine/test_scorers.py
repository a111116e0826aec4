"""Scorers are deterministic and see what changes: the same frame gives the same vector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.registry import MINI_MODEL, SHIPPED_MODELS_DIR
from core.scores import distance
from engine.pipeline import Engine
from engine.scorers import ClipScorer, SsimScorer, UNetScorer, build_scorers, clip_location

MINI = Path(SHIPPED_MODELS_DIR) / MINI_MODEL


def frames() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    sky = np.zeros((64, 64, 3), np.uint8)
    sky[:32] = (90, 140, 230)
    sky[32:] = (200, 170, 90)
    noisy = np.clip(sky + rng.normal(0, 6, sky.shape), 0, 255).astype(np.uint8)
    night = sky.copy()
    night[:32] = (10, 10, 40)
    return [Image.fromarray(sky), Image.fromarray(noisy), Image.fromarray(night)]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir) -> Engine:
    torch.set_num_threads(1)
    return Engine.load(str(tiny_model_dir), device="cpu")


def _check(scorer, prompts=(("a desert at noon", "a desert at night"),) * 3) -> None:
    first = scorer.score(frames(), list(prompts))
    again = scorer.score(frames()[::-1], list(prompts))[::-1]  # another batch order
    for a, b in zip(first, again, strict=True):
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-4)
        if a.sim_a is not None:
            assert a.sim_a == pytest.approx(b.sim_a, abs=1e-4)
    sky, noisy, night = (v.embedding for v in first)
    # A little noise is a smaller change than day turning to night.
    assert distance(scorer.name, sky, noisy) < distance(scorer.name, sky, night)


@pytest.mark.skipif(not (MINI / "clip").is_dir(), reason="Segue-mini's CLIP is not in models/")
def test_clip_scorer_is_deterministic_and_reads_the_prompts() -> None:
    scorer = ClipScorer(clip_location(MINI, ""))
    _check(scorer)
    day, _, night = scorer.score(frames(), [("a desert during the day", "a desert at night")] * 3)
    assert day.sim_a - day.sim_b > night.sim_a - night.sim_b  # the day frame leans to the day prompt


def test_unet_scorer_is_deterministic(tiny: Engine) -> None:
    _check(UNetScorer(tiny.pipe))


def test_ssim_scorer_is_deterministic() -> None:
    _check(SsimScorer())


def test_a_missing_clip_is_left_out_with_a_reason(tiny: Engine, caplog) -> None:
    scorers = build_scorers(["clip", "ssim"], tiny.pipe, None, clip="/nowhere/clip")
    assert [s.name for s in scorers] == ["ssim"]
    assert "SEGUE_SCORER_CLIP" in caplog.text
