"""Per-block U-Net readings' names (core/block_readings.py): parsed back, ordered as the U-Net runs its blocks
then by noise level, labelled for people, and laid out as the block x noise grid of a study's results."""

from __future__ import annotations

import random

from core.block_readings import grid, label, parse, scorer_name, sort_key


def test_a_name_is_parsed_back_and_other_scorers_are_not_readings() -> None:
    assert scorer_name("up_blocks.1", 500) == "unet/up_blocks.1@t500"
    assert parse("unet/up_blocks.1@t500") == ("up_blocks.1", 500)
    assert parse("unet/mid_block@t50") == ("mid_block", 50)
    assert parse("unet/up_blocks.1") == ("up_blocks.1", None)  # a reading without a noise level
    for other in ("clip", "unet", "ssim", "pixels", "unet-up1-t200", "unet/", "unet/x@t"):
        assert parse(other) is None, other


def test_readings_sort_in_unet_order_then_by_noise_level_after_the_other_distances() -> None:
    names = [scorer_name(b, t) for b in ("down_blocks.0", "down_blocks.10", "mid_block", "up_blocks.2")
             for t in (50, 200, 500, 800)]  # fmt: skip
    shuffled = names + ["zeta"]
    random.Random(3).shuffle(shuffled)
    assert sorted(shuffled, key=sort_key) == [*names, "zeta"]
    assert names.index("unet/down_blocks.0@t800") < names.index("unet/down_blocks.10@t50")


def test_labels_read_well() -> None:
    assert label("unet/up_blocks.1@t500") == "U-Net up_blocks.1, t=500"
    assert label("unet/mid_block") == "U-Net mid_block"
    assert (label("clip"), label("ssim"), label("pixels")) == ("CLIP", "SSIM", "pixels")
    assert label("unet-up1-t200") == "unet-up1-t200"


def test_the_grid_holds_each_block_and_noise_level_with_the_best_cell_marked() -> None:
    rows = [{"name": "clip", "triplet_accuracy": 0.9}]
    rows += [{"name": scorer_name(b, t), "triplet_accuracy": v}
             for b, t, v in [("up_blocks.0", 50, 0.5), ("mid_block", 50, 0.8), ("mid_block", 500, 0.8),
                             ("up_blocks.0", 500, None)]]  # fmt: skip
    found = grid(rows)
    assert found is not None and found["timesteps"] == [50, 500]
    assert [r["block"] for r in found["rows"]] == ["mid_block", "up_blocks.0"]
    cells = {(r["block"], c["t"]): c for r in found["rows"] for c in r["cells"]}
    assert found["best"] == ("mid_block", 50) and cells[("mid_block", 50)]["best"]  # a tie: the first
    assert sum(c["best"] for c in cells.values()) == 1
    assert (cells[("mid_block", 500)]["level"], cells[("up_blocks.0", 50)]["level"]) == (8, 5)
    assert cells[("up_blocks.0", 500)]["value"] is None and cells[("up_blocks.0", 500)]["level"] is None
    assert grid([{"name": "clip", "triplet_accuracy": 0.5}]) is None
