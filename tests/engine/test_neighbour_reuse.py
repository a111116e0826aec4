"""Neighbour reuse on the tiny model: shared in-betweens fed with their anchors' deep features, late steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.params import SAVINGS_OFF, PixelSettings
from engine.fidelity import grey, ssim
from engine.neighbours import FeatureStore
from engine.pipeline import Engine, FrameRequest, SharedStart
from tests.support.pixels import pixels, psnr

CAT, BICYCLE = "a cat", "a bicycle"
STEPS, SHARED_FROM = 8, 2
PARAMS = PixelSettings(model="segue-tiny", seed=7, steps=STEPS, width=64, height=64, guidance_scale=7.5)
REUSE = PARAMS.model_copy(update={"neighbour_reuse_from": 0.5})  # from step 4 of 8
ANCHORS = [FrameRequest(CAT, BICYCLE, t) for t in (0.0, 0.5, 1.0)]
BETWEENS = [
    FrameRequest(CAT, BICYCLE, 0.25, start=SharedStart(ANCHORS[0], ANCHORS[1], 0.5, SHARED_FROM)),
    FrameRequest(CAT, BICYCLE, 0.75, start=SharedStart(ANCHORS[1], ANCHORS[2], 0.5, SHARED_FROM)),
]


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    return Engine.load(str(tiny_model_dir), device="cpu")


def test_off_is_bit_identical_to_the_plain_shared_render(engine: Engine) -> None:
    plain = pixels(engine.render(PARAMS, [*ANCHORS, *BETWEENS]))
    items = engine.last_stats.unet_items
    off = pixels(engine.render(PARAMS.model_copy(update=SAVINGS_OFF), [*ANCHORS, *BETWEENS]))
    assert all(np.array_equal(a, b) for a, b in zip(plain, off, strict=True))
    assert engine.last_stats.unet_items == items and engine.last_stats.shallow_calls == 0


def test_on_in_betweens_run_the_shallow_path_from_the_reuse_step_close_to_full_compute(
    engine: Engine,
) -> None:
    full = engine.render(PARAMS, [*ANCHORS, *BETWEENS])
    full_calls = engine.last_stats.unet_calls
    reused = engine.render(REUSE, [*ANCHORS, *BETWEENS])
    stats = engine.last_stats
    # Steps 0-3: one call (anchors, in-betweens from step 2); steps 4-7: a full call for the anchors and a
    # shallow one for the in-betweens.
    assert full_calls == STEPS and stats.unet_calls == STEPS + 4 and stats.shallow_calls == 4
    assert stats.shallow_items == 4 * 2 * len(BETWEENS)  # 4 steps, 2 rows (guidance) per in-between
    # The anchors are computed exactly as before; the in-betweens change, but little.
    for a, b in zip(pixels(full[:3]), pixels(reused[:3]), strict=True):
        assert np.abs(a - b).max() <= 1
    changed = [not np.array_equal(a, b) for a, b in zip(pixels(full[3:]), pixels(reused[3:]), strict=True)]
    assert any(changed)
    for a, b in zip(full[3:], reused[3:], strict=True):
        assert psnr(np.asarray(a, dtype=np.int16), np.asarray(b, dtype=np.int16)) > 25
        assert ssim(grey(a), grey(b)) > 0.9


def test_anchors_of_an_earlier_batch_lend_their_kept_features(engine: Engine) -> None:
    together = pixels(engine.render(REUSE, [*ANCHORS, *BETWEENS]))[3:]
    engine.features = FeatureStore()
    engine.render(REUSE, ANCHORS, keep_latents_at=[SHARED_FROM])
    later = pixels(engine.render(REUSE, BETWEENS))
    # Only the in-betweens run: steps 2-3 full, 4-7 shallow; no anchor is recomputed.
    assert engine.last_stats.unet_calls == STEPS - SHARED_FROM and engine.last_stats.shallow_calls == 4
    assert engine.last_stats.unet_items == 2 * 2 * (STEPS - SHARED_FROM)
    for a, b in zip(together, later, strict=True):
        assert np.abs(a - b).max() <= 2
    # Nothing kept (another worker, or evicted): the anchors run in full beside the batch, same pictures.
    engine.features = FeatureStore()
    alone = pixels(engine.render(REUSE, BETWEENS))
    assert engine.last_stats.unet_calls == STEPS + 4
    for a, b in zip(together, alone, strict=True):
        assert np.abs(a - b).max() <= 2


def test_the_store_is_bounded_in_bytes() -> None:
    import torch

    store = FeatureStore(limit=3 * 4 * 16)
    for step in range(5):
        store.put("s", "frame", step, (None, torch.zeros(16)))
    assert store.get_all("s", "frame", range(2, 5)) is not None
    assert store.get_all("s", "frame", range(0, 5)) is None
