"""bench/flow.py: flow in-betweens measured against a crossfade on a moving disc."""

from __future__ import annotations

from bench.flow import measure


def test_flow_in_betweens_beat_a_crossfade_on_a_moving_disc() -> None:
    row = measure(64, 6.0, repeats=3)
    assert row["method"] == "flow"
    assert row["psnr_flow"] >= row["psnr_crossfade"] + 3.0, row
