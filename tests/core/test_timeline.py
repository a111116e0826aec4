"""Timeline math: frame positions, segment mapping, render order and frame identity."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.params import HARD_CAPS, RANGES, PixelSettings
from core.timeline import (
    FramePlan,
    TimelineKeyframe,
    check_keys,
    frame_key,
    frame_times,
    locate,
    plan_frames,
    render_order,
)


def with_(pixels: PixelSettings, **changes: object) -> PixelSettings:
    return pixels.model_copy(update=changes)


PIXELS = PixelSettings(
    model="segue-tiny",
    negative_prompt="",
    seed=7,
    steps=25,
    guidance_scale=7.5,
    width=64,
    height=64,
    scheduler="dpmsolver",
    text_interpolation="lerp",
)

inner_positions = st.lists(
    st.floats(min_value=0.01, max_value=0.99, allow_nan=False), min_size=0, max_size=6, unique=True
).map(lambda xs: sorted({round(x, 4) for x in xs}))


def timeline(inner: list[float]) -> list[TimelineKeyframe]:
    return [
        TimelineKeyframe(0.0, "start"),
        *(TimelineKeyframe(p, f"k{p}") for p in inner),
        TimelineKeyframe(1.0, "end"),
    ]


@given(st.integers(min_value=int(RANGES["frames"].low), max_value=int(RANGES["frames"].high(HARD_CAPS))))
def test_frame_times_have_exact_endpoints_and_increase(n: int) -> None:
    times = frame_times(n)
    assert len(times) == n
    assert times[0] == 0.0 and times[-1] == 1.0
    assert all(a < b for a, b in zip(times, times[1:], strict=False))


def test_frame_times_refuses_fewer_than_two() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        frame_times(1)


@given(inner_positions, st.integers(min_value=2, max_value=200))
def test_every_frame_blends_the_two_keyframes_around_it(inner: list[float], n: int) -> None:
    keys = timeline(inner)
    for plan in plan_frames(keys, n):
        left, right = keys[plan.segment], keys[plan.segment + 1]
        assert left.position <= plan.t <= right.position
        assert (plan.prompt_a, plan.prompt_b) == (left.prompt, right.prompt)
        assert 0.0 <= plan.local_t <= 1.0
        expected = (plan.t - left.position) / (right.position - left.position)
        assert plan.local_t == pytest.approx(expected, abs=1e-9)


@given(inner_positions)
def test_a_frame_on_a_keyframe_shows_that_keyframe_alone(inner: list[float]) -> None:
    keys = timeline(inner)
    for key in keys:
        segment, local_t = locate(key.position, keys)
        prompt = keys[segment].prompt if local_t == 0.0 else keys[segment + 1].prompt
        assert prompt == key.prompt
        assert local_t in (0.0, 1.0)


def test_the_first_and_last_frames_are_the_endpoint_prompts() -> None:
    plans = plan_frames(timeline([0.4]), 11)
    assert (plans[0].prompt_a, plans[0].local_t) == ("start", 0.0)
    assert (plans[-1].prompt_b, plans[-1].local_t) == ("end", 1.0)
    assert (
        plans[4].t == pytest.approx(0.4)
        and plans[4].prompt_a == "k0.4"
        and plans[4].local_t == pytest.approx(0.0)
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([TimelineKeyframe(0.0, "a")], "at least two"),
        ([TimelineKeyframe(0.1, "a"), TimelineKeyframe(1.0, "b")], "position 0"),
        (
            [
                TimelineKeyframe(0.0, "a"),
                TimelineKeyframe(0.5, "m"),
                TimelineKeyframe(0.5, "n"),
                TimelineKeyframe(1.0, "b"),
            ],
            "share position",
        ),
    ],
)
def test_broken_timelines_are_refused(keys: list[TimelineKeyframe], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_keys(keys)


@given(st.integers(min_value=1, max_value=700))
def test_render_order_is_a_permutation_that_starts_with_both_ends(n: int) -> None:
    order = render_order(n)
    assert sorted(order) == list(range(n))
    assert order[0] == 0
    if n > 1:
        assert order[1] == n - 1
    if n > 2:
        assert order[2] == (n - 1) // 2


def _plan(**changes: object) -> FramePlan:
    return replace(
        FramePlan(index=3, t=0.3, segment=0, prompt_a="city", prompt_b="forest", local_t=0.3), **changes
    )


def test_frame_key_depends_on_everything_that_changes_pixels() -> None:
    base = frame_key(PIXELS, _plan())
    assert frame_key(PIXELS, _plan()) == base
    assert frame_key(with_(PIXELS, seed=8), _plan()) != base
    assert frame_key(with_(PIXELS, steps=24), _plan()) != base
    assert frame_key(with_(PIXELS, model="other"), _plan()) != base
    assert frame_key(with_(PIXELS, text_interpolation="slerp"), _plan()) != base
    assert frame_key(PIXELS, _plan(local_t=0.31)) != base
    assert frame_key(PIXELS, _plan(prompt_b="sea")) != base


def test_frame_key_ignores_what_does_not_change_pixels() -> None:
    base = frame_key(PIXELS, _plan())
    # Position in the timeline and the frame's index do not change its pixels: only the blend does.
    assert frame_key(PIXELS, _plan(index=9, t=0.9, segment=2)) == base
    # A pure keyframe frame is the same whatever the neighbour it is blended with at weight 0.
    at_start = frame_key(PIXELS, _plan(local_t=0.0))
    assert frame_key(PIXELS, _plan(local_t=0.0, prompt_b="sea")) == at_start
    assert frame_key(with_(PIXELS, text_interpolation="slerp"), _plan(local_t=0.0)) == at_start
    assert frame_key(PIXELS, _plan(local_t=1.0, prompt_a="x")) == frame_key(
        PIXELS, _plan(local_t=0.0, prompt_a="forest", prompt_b="y")
    )


def test_the_model_revision_is_part_of_a_frames_identity(tmp_path) -> None:
    from core.registry import model_revision

    model = tmp_path / "model"
    (model / "unet").mkdir(parents=True)
    (model / "model_index.json").write_text("{}")
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"\x00" * 4096)
    before = model_revision(str(model), tmp_path)
    assert before and model_revision(str(model), tmp_path) == before  # stable while nothing changes
    weights.write_bytes(b"\x01" * 4096)  # retrained: same size, new weights
    after = model_revision(str(model), tmp_path)
    assert after != before
    assert frame_key(PIXELS, _plan(), before) != frame_key(PIXELS, _plan(), after)


def test_the_shipped_model_has_a_revision() -> None:
    from pathlib import Path

    from core.registry import MINI_MODEL, model_revision

    assert len(model_revision(MINI_MODEL, Path("unused"))) == 16
    assert model_revision("not-a-hub-id", Path("unused")) == ""
