"""The U-Net savings as settings: off, frame keys are the ones Segue always gave; on, they are new keys."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from core.params import SAVINGS_OFF, PixelSettings, RenderSettings
from core.timeline import FramePlan, frame_key

PIXELS = PixelSettings(model="segue-mini", seed=3, steps=25)
PLAIN = FramePlan(1, 0.5, 0, "a cat", "a dog", 0.5)
MOCE = FramePlan(1, 0.5, 0, "a cat", "a dog", 0.5, switch_step=3, early_a="red")


def test_off_the_frame_keys_are_those_of_before_the_settings_existed() -> None:
    # Computed by the code before guidance_until and deep_cache_interval existed.
    assert frame_key(PIXELS, PLAIN, "rev1") == "f98e096aceb3dc1c1456d3e942ab60a9b67250ba"
    assert frame_key(PIXELS, MOCE, "rev1") == "59728479f234ad365eba7097cc3ad7510bb6311d"
    off = PIXELS.model_copy(update=SAVINGS_OFF)
    assert frame_key(off, PLAIN, "rev1") == frame_key(PIXELS, PLAIN, "rev1")


@pytest.mark.parametrize("change", [{"guidance_until": 0.5}, {"deep_cache_interval": 3}])
def test_on_each_saving_is_part_of_the_frame_key(change: dict[str, float]) -> None:
    on = PIXELS.model_copy(update=change)
    assert frame_key(on, PLAIN, "rev1") != frame_key(PIXELS, PLAIN, "rev1")
    assert frame_key(on, MOCE, "rev1") != frame_key(PIXELS, MOCE, "rev1")
    both = PIXELS.model_copy(update={"guidance_until": 0.5, "deep_cache_interval": 3})
    assert len({frame_key(p, PLAIN, "rev1") for p in (PIXELS, on, both)}) == 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("guidance_until", 1.5, "guidance_until must be a finite number between 0 and 1"),
        ("guidance_until", -0.1, "guidance_until must be a finite number between 0 and 1"),
        ("deep_cache_interval", 0, "deep_cache_interval must be between 1 and 150 (got 0)"),
        ("deep_cache_interval", 151, "deep_cache_interval must be between 1 and 150 (got 151)"),
        ("neighbour_reuse_from", 1.01, "neighbour_reuse_from must be a finite number between 0 and 1"),
        ("deep_cache_from", 1.5, "deep_cache_from must be a finite number between 0 and 1"),
        ("deep_cache_from", -0.2, "deep_cache_from must be a finite number between 0 and 1"),
        ("neighbour_reuse_from", -1, "neighbour_reuse_from must be a finite number between 0 and 1"),
    ],
)
def test_bad_values_name_the_field_and_the_range(field: str, value: float, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        RenderSettings.model_validate({field: value})
    assert RenderSettings().guidance_until == 1.0 and RenderSettings().deep_cache_interval == 1
    assert RenderSettings().neighbour_reuse_from == 1.0 and RenderSettings().deep_cache_from == 0.0


def test_deep_cache_from_is_in_the_key_only_where_deep_cache_runs() -> None:
    cached = PIXELS.model_copy(update={"deep_cache_interval": 2})
    later = cached.model_copy(update={"deep_cache_from": 0.4})
    keys = {frame_key(p, PLAIN, "rev1") for p in (PIXELS, cached, later)}
    assert len(keys) == 3
    assert frame_key(later.model_copy(update={"deep_cache_from": 0.6}), PLAIN, "rev1") not in keys
    # From the first step (0) is DeepCache as it always was: the key it always had (computed by the code
    # before deep_cache_from existed).
    assert frame_key(cached, PLAIN, "rev1") == "f64a046238dfe447ffe56f1c8b11cd8bce30646c"
    # Without DeepCache (interval 1) no step runs the shallow path: its start changes no pixel, no key.
    assert frame_key(PIXELS.model_copy(update={"deep_cache_from": 0.4}), PLAIN, "rev1") == frame_key(
        PIXELS, PLAIN, "rev1"
    )


def _shared_keys(pixels: PixelSettings, start_step: int = 10) -> list[str]:
    from core.timeline import frame_keys, share

    plans = [FramePlan(i, i / 4, 0, "a cat", "a dog", i / 4) for i in range(5)]
    return frame_keys(pixels, share(plans, start_step), "rev1")


def test_neighbour_reuse_is_in_the_key_of_shared_in_betweens_only() -> None:
    off = _shared_keys(PIXELS)
    on = _shared_keys(PIXELS.model_copy(update={"neighbour_reuse_from": 0.6}))
    # Frames 1 and 3 are in-betweens (anchors: every other frame): only their keys change.
    assert [a == b for a, b in zip(off, on, strict=True)] == [True, False, True, False, True]
    later = _shared_keys(PIXELS.model_copy(update={"neighbour_reuse_from": 0.8}))
    assert later[1] not in (off[1], on[1])
    # A plain frame never reuses: its key is the one it always had.
    assert frame_key(PIXELS.model_copy(update={"neighbour_reuse_from": 0.2}), PLAIN, "rev1") == frame_key(
        PIXELS, PLAIN, "rev1"
    )
    # Reuse from a fraction at or before the in-betweens' start begins at their start: one key for both.
    assert (
        _shared_keys(PIXELS.model_copy(update={"neighbour_reuse_from": 0.0}))[1]
        == _shared_keys(PIXELS.model_copy(update={"neighbour_reuse_from": 0.4}))[1]
    )


def test_the_reuse_step_starts_no_earlier_than_the_in_between_and_its_mixed_steps() -> None:
    from core.params import neighbour_reuse_step

    on = PIXELS.model_copy(update={"neighbour_reuse_from": 0.6})  # ceil(0.6 x 25) = 15
    assert neighbour_reuse_step(on, 10) == 15
    assert neighbour_reuse_step(on, 18) == 18
    assert neighbour_reuse_step(on, 10, mixed_steps=20) == 20
    assert neighbour_reuse_step(on, 0) is None  # not an in-between
    assert neighbour_reuse_step(PIXELS, 10) is None  # off
    assert neighbour_reuse_step(PIXELS.model_copy(update={"neighbour_reuse_from": 0.99}), 10) is None
