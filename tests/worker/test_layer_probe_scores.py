"""The confusion map's U-Net distance follows the layer probe's record for the loaded model: the worker
scores with the recorded block under that block's own name, and falls back when the record is for other
weights."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image


def test_the_worker_scores_with_the_recorded_block_and_falls_back_on_other_weights(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.registry import layer_probe_record, model_revision
    from engine.layer_features import BlockChoice
    from engine.pipeline import Engine
    from infra.config import get_settings
    from infra.db import new_session
    from services.scores import available_scorers, stored_scores
    from worker.scoring import score_and_store, scorers_for

    torch.set_num_threads(1)
    monkeypatch.setenv("SEGUE_SCORER", "unet,ssim")
    get_settings.cache_clear()
    settings = get_settings()
    models_dir = settings.models_dir
    assert models_dir is not None
    engine = Engine.load("segue-tiny", device="cpu", models_dir=models_dir)
    assert [s.name for s in scorers_for(engine)] == ["unet", "ssim"]  # no record yet: the fallback

    record = layer_probe_record("segue-tiny", models_dir, settings.data_dir)
    assert record.parent == Path(models_dir) / "segue-tiny"  # beside the weights (a writable directory)
    revision = model_revision("segue-tiny", models_dir)
    BlockChoice("mid_block", 500, revision=revision).save(record)
    assert model_revision("segue-tiny", models_dir) == revision  # frames keep their keys
    assert [s.name for s in scorers_for(engine)] == ["unet-mid-t500", "ssim"]

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(2)]
    keys = ["a" * 64, "b" * 64]
    assert score_and_store(engine, images, keys, [("", "")] * 2) == 4
    with new_session() as db:
        assert set(stored_scores(db, "unet-mid-t500", keys)) == set(keys)
        assert stored_scores(db, "unet", keys) == {}
        render = SimpleNamespace(frames=[SimpleNamespace(key=k) for k in keys])
        assert available_scorers(db, render) == ["unet-mid-t500", "ssim"]  # type: ignore[arg-type]

    BlockChoice("mid_block", 500, revision="other-weights").save(record)
    assert [s.name for s in scorers_for(engine)] == ["unet", "ssim"]
