"""The layer probe's feature reader: one vector per block, noise level and prompt, with stable shapes;
and the U-Net scorer on the block the probe recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.registry import LAYER_PROBE_FILE, model_revision
from engine.layer_features import BlockChoice, LayerFeatures, Reading, block_names, scheduler_timestep
from engine.pipeline import Engine
from engine.scorers import UNET_BLOCK, UNET_TIMESTEP, UNetScorer, build_scorers


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> Engine:
    torch.set_num_threads(1)
    return Engine.load(str(tiny_model_dir), device="cpu")


def pictures(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(n)]


def test_every_block_gives_one_vector_per_image_at_every_noise_level_and_prompt(tiny: Engine) -> None:
    reader = LayerFeatures(tiny.pipe)
    unet = tiny.pipe.unet
    assert reader.blocks == block_names(unet)
    assert reader.blocks[0] == "down_blocks.0" and "mid_block" in reader.blocks
    assert reader.blocks[-1] == f"up_blocks.{len(unet.up_blocks) - 1}"
    prompts = ["a red house", "a dog at night", "a boat on the sea"]
    features = reader.pooled(pictures(3), prompts, timesteps=(50, 800))
    expected = {Reading(b, t, c) for b in reader.blocks for t in (50, 800) for c in (False, True)}
    assert set(features) == expected
    channels = {
        **{f"down_blocks.{i}": block.resnets[-1].out_channels for i, block in enumerate(unet.down_blocks)},
        "mid_block": unet.mid_block.resnets[-1].out_channels,
        **{f"up_blocks.{i}": block.resnets[-1].out_channels for i, block in enumerate(unet.up_blocks)},
    }
    for reading, vectors in features.items():
        assert vectors.shape == (3, channels[reading.block]), reading
        assert torch.isfinite(vectors).all()
    # Stable: another batch (order, size) gives the same vectors; the prompt changes what a block sees.
    again = reader.pooled(pictures(3)[::-1], prompts[::-1], timesteps=(50,))
    for reading, vectors in again.items():
        torch.testing.assert_close(vectors.flip(0), features[reading], atol=1e-4, rtol=1e-4)
    plain, text = features[Reading("mid_block", 800, False)], features[Reading("mid_block", 800, True)]
    assert not torch.allclose(plain, text)


def test_a_pass_stops_after_the_last_block_read_with_the_same_outputs_as_a_whole_pass(tiny: Engine) -> None:
    reader = LayerFeatures(tiny.pipe)
    unet = tiny.pipe.unet
    latents = reader.latents(pictures(2))
    ran: list[str] = []
    counters = [
        module.register_forward_hook(lambda *_, name=name: ran.append(name))
        for name, module in unet.named_modules()
        if name in reader.blocks or name == "conv_out"
    ]
    try:
        whole = reader.activations(latents, UNET_TIMESTEP, ["a red house", ""], reader.blocks)
        assert ran == reader.blocks  # every block ran (only the output convolution is left out)
        ran.clear()
        early = reader.activations(latents, UNET_TIMESTEP, ["a red house", ""], ["down_blocks.1", UNET_BLOCK])
    finally:
        for counter in counters:
            counter.remove()
    assert ran == reader.blocks[: reader.blocks.index(UNET_BLOCK) + 1]  # nothing after the scorer's block
    assert set(early) == {"down_blocks.1", UNET_BLOCK}
    for block, output in early.items():
        assert torch.equal(output, whole[block]), block


def test_noise_levels_are_read_on_a_1000_step_scale(tiny: Engine) -> None:
    steps = tiny.pipe.scheduler.config.num_train_timesteps
    assert scheduler_timestep(tiny.pipe, 500) == min(steps - 1, round(500 * steps / 1000))
    assert scheduler_timestep(tiny.pipe, 1000) == steps - 1


def test_the_unet_scorer_reads_the_recorded_block_under_its_own_name(tiny: Engine, tmp_path: Path) -> None:
    default = UNetScorer.recorded(tiny.pipe, None)
    assert (default.name, default.block, default.timestep) == ("unet", UNET_BLOCK, UNET_TIMESTEP)
    record = tmp_path / LAYER_PROBE_FILE
    BlockChoice("mid_block", 500, revision="abc", accuracy=0.7, source="test").save(record)
    assert BlockChoice.load(record, "other-weights") is None  # probed on other weights: fall back
    choice = BlockChoice.load(record, "abc")
    [scorer] = build_scorers(["unet"], tiny.pipe, None, unet_choice=choice)
    assert isinstance(scorer, UNetScorer)
    assert (scorer.name, scorer.block, scorer.timestep) == ("unet-mid-t500", "mid_block", 500)
    one, two = scorer.score(pictures(2), [("", "")] * 2), default.score(pictures(2), [("", "")] * 2)
    assert one[0].embedding.shape != two[0].embedding.shape or not np.allclose(
        one[0].embedding, two[0].embedding
    )
    with pytest.raises(ValueError, match="no block 'up_blocks.9'"):
        UNetScorer(tiny.pipe, block="up_blocks.9")


def test_a_record_beside_the_weights_does_not_change_the_model_revision(tiny_model_dir: Path) -> None:
    before = model_revision(str(tiny_model_dir), tiny_model_dir.parent)
    record = tiny_model_dir / LAYER_PROBE_FILE
    BlockChoice("mid_block", 200, revision=before).save(record)
    try:
        assert model_revision(str(tiny_model_dir), tiny_model_dir.parent) == before
    finally:
        record.unlink()
