"""Attention interpolation and Beta spacing, torch-free: settings, plan, frame key, Beta prior."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from core import spacing
from core.params import KeyframeSettings, PixelSettings, RenderSettings
from core.timeline import FramePlan, TimelineKeyframe, frame_key, frame_keys, mixed_steps, plan_frames

PIXELS = PixelSettings(
    model="segue-tiny", negative_prompt="", seed=7, steps=25, guidance_scale=7.5, width=64, height=64
)
KEYS = [TimelineKeyframe(0.0, "city"), TimelineKeyframe(0.5, "forest"), TimelineKeyframe(1.0, "sea")]


def test_the_settings_have_defaults_and_ranges_named_in_the_error() -> None:
    settings = RenderSettings()
    assert settings.attention_interpolation == "none" and settings.attention_steps == 0.5
    with pytest.raises(ValidationError, match="attention_steps must be a finite number between 0 and 1"):
        PixelSettings(attention_steps=1.2)
    with pytest.raises(ValidationError, match="attention_interpolation"):
        PixelSettings(attention_interpolation="sideways")  # type: ignore[arg-type]
    assert KeyframeSettings(attention_interpolation="fused").attention_interpolation == "fused"
    assert RenderSettings(spacing="beta").spacing == "beta"


def test_frames_without_attention_keep_the_keys_they_had_before_the_setting_existed() -> None:
    """Golden keys computed by the code before attention interpolation existed: no stored frame is lost."""
    mid = FramePlan(index=3, t=0.3, segment=0, prompt_a="city", prompt_b="forest", local_t=0.3)
    start = FramePlan(index=0, t=0.0, segment=0, prompt_a="city", prompt_b="forest", local_t=0.0)
    assert frame_key(PIXELS, mid) == "438a2267dc7fc5c9c86876cc73a1032743744219"
    assert frame_key(PIXELS, start) == "194b79a35c986a1fe84643b7e58dbb9e7c954316"
    # Attention settings act on in-betweens only: a transition-wide mode changes no keyframe's key.
    fused = PIXELS.model_copy(update={"attention_interpolation": "fused", "attention_steps": 0.8})
    assert frame_key(fused, start) == frame_key(PIXELS, start)


def test_the_plan_gives_in_betweens_their_mode_and_their_keyframes_frames() -> None:
    plans = plan_frames(KEYS, 9, seed=7, attention="inner")
    for plan in plans:
        if 0.0 < plan.local_t < 1.0:
            assert plan.attention == "inner" and plan.ends is not None
            a, b = plan.ends
            assert (a.prompt_a, a.local_t, a.attention) == (KEYS[plan.segment].prompt, 0.0, "none")
            assert b.t == KEYS[plan.segment + 1].position and b.attention == "none"
        else:
            assert plan.attention == "none" and plan.ends is None


def test_a_keyframe_sets_its_segments_mode_and_none_turns_it_off() -> None:
    keys = [
        TimelineKeyframe(0.0, "city", attention_interpolation="outer"),
        TimelineKeyframe(0.5, "forest", attention_interpolation="none"),
        TimelineKeyframe(1.0, "sea"),
    ]
    plans = plan_frames(keys, 9, seed=7, attention="fused")
    modes = {(p.segment, p.attention) for p in plans if 0.0 < p.local_t < 1.0}
    assert modes == {(0, "outer"), (1, "none")}
    # A cut segment shows its keyframe: nothing to mix.
    cut = [TimelineKeyframe(0.0, "city", cut=True), TimelineKeyframe(1.0, "sea")]
    assert all(p.attention == "none" for p in plan_frames(cut, 5, attention="inner"))


def test_the_key_of_an_in_between_hashes_mode_mixed_steps_and_ends() -> None:
    plain = plan_frames(KEYS, 9, seed=7)
    inner = plan_frames(KEYS, 9, seed=7, attention="inner")
    outer = plan_frames(KEYS, 9, seed=7, attention="outer")
    k_plain, k_inner, k_outer = (frame_keys(PIXELS, p) for p in (plain, inner, outer))
    for i, plan in enumerate(plain):
        if 0.0 < plan.local_t < 1.0:
            assert len({k_plain[i], k_inner[i], k_outer[i]}) == 3
        else:
            assert k_plain[i] == k_inner[i] == k_outer[i]
    mid = inner[1]
    more = PIXELS.model_copy(update={"attention_steps": 0.9})
    assert frame_key(more, mid) != frame_key(PIXELS, mid)
    # 0.5 and 0.49 of 25 steps both mix the first 12 (12.5 rounds to even): the same pixels, the same key.
    same = PIXELS.model_copy(update={"attention_steps": 0.49})
    assert mixed_steps(same) == mixed_steps(PIXELS) == 12
    assert frame_key(same, mid) == frame_key(PIXELS, mid)
    none = PIXELS.model_copy(update={"attention_steps": 0.0})
    assert frame_key(none, mid) == k_plain[1]
    # Different noise at a keyframe (its own seed) means different ends: a different key.
    seeded = plan_frames([TimelineKeyframe(0.0, "city", seed=3), *KEYS[1:]], 9, seed=7, attention="inner")
    assert frame_key(PIXELS, seeded[1]) != frame_key(PIXELS, mid)


# ---------------------------------------------------------------- Beta prior


def test_beta_cdf_matches_closed_forms() -> None:
    for x in (0.1, 0.37, 0.5, 0.8, 0.99):
        assert spacing.beta_cdf(x, 1.0, 1.0) == pytest.approx(x, abs=1e-12)
        assert spacing.beta_cdf(x, 2.0, 2.0) == pytest.approx(3 * x**2 - 2 * x**3, abs=1e-12)
        assert spacing.beta_cdf(x, 0.5, 0.5) == pytest.approx(
            2 / math.pi * math.asin(math.sqrt(x)), abs=1e-10
        )
        assert spacing.beta_cdf(x, 3.0, 1.0) == pytest.approx(x**3, abs=1e-12)


@given(
    st.floats(min_value=0.001, max_value=0.999),
    st.sampled_from(spacing.BETA_GRID),
    st.sampled_from(spacing.BETA_GRID),
)
def test_beta_quantile_inverts_the_cdf(u: float, a: float, b: float) -> None:
    x = spacing.beta_quantile(u, a, b)
    assert 0.0 <= x <= 1.0
    assert spacing.beta_cdf(x, a, b) == pytest.approx(u, abs=1e-6)  # steep ends: float x


def test_the_fit_recovers_the_prior_that_made_the_distances() -> None:
    ts = spacing.grid(9)
    cdf = [spacing.beta_cdf(t, 2.3784, 0.5) for t in ts]
    gaps = [b - a for a, b in zip(cdf, cdf[1:], strict=False)]
    warp = spacing.BetaWarp.fit(ts, gaps)
    assert (warp.alpha, warp.beta) == (2.3784, 0.5)
    positions = spacing.apply(warp, spacing.grid(5))
    assert positions[0] == 0.0 and positions[-1] == 1.0
    assert all(b > a for a, b in zip(positions, positions[1:], strict=False))
    # Each frame sits an equal share of the measured change after the one before.
    shares = [warp.forward(t) for t in positions]
    assert shares == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0], abs=1e-6)


def test_even_change_fits_uniform_spacing() -> None:
    ts = spacing.grid(9)
    warp = spacing.BetaWarp.fit(ts, [1.0] * 8)
    assert (warp.alpha, warp.beta) == (1.0, 1.0)
    assert spacing.apply(warp, spacing.grid(5)) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0], abs=1e-9)


def test_a_beta_warp_spaces_segments_on_their_own() -> None:
    warp = spacing.BetaWarp(2.0, 2.0)
    keys = [
        TimelineKeyframe(0.0, "a", frames=4),
        TimelineKeyframe(0.5, "b", frames=4),
        TimelineKeyframe(1.0, "c"),
    ]
    ts = [p.t for p in plan_frames(keys, 9, spacing=warp)]
    assert ts[0] == 0.0 and ts[4] == 0.5 and ts[-1] == 1.0
    assert all(b > a for a, b in zip(ts, ts[1:], strict=False))
