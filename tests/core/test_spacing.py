"""Spacing (named curves, perceptual re-spacing, adaptive refinement) and the keyframe behaviours."""

from __future__ import annotations

import math
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import spacing
from core.params import (
    PROBED_SPACINGS,
    KeyframeSnapshot,
    PixelSettings,
    RenderSnapshot,
    Spacing,
)
from core.timeline import (
    TimelineKeyframe,
    base_times,
    cut_boundaries,
    frame_key,
    frame_keys,
    frame_times,
    noise_at,
    plan_frames,
    share,
)

PIXELS = PixelSettings(model="segue-tiny", seed=7, steps=25, width=64, height=64)


# ---------------------------------------------------------------- named curves


def test_every_named_spacing_is_a_curve_or_probed() -> None:
    # ... or "audio", drawn from the soundtrack's onsets (docs/animatics.md)
    assert set(spacing.CURVES) | set(PROBED_SPACINGS) | {"audio"} == set(get_args(Spacing))


@pytest.mark.parametrize("name", list(spacing.CURVES))
@given(n=st.integers(min_value=2, max_value=300))
@settings(max_examples=25, deadline=None)
def test_curves_keep_exact_ends_and_increase(name: str, n: int) -> None:
    ts = spacing.spaced(n, name)
    assert ts[0] == 0.0 and ts[-1] == 1.0 and len(ts) == n
    assert all(a < b for a, b in zip(ts, ts[1:], strict=False)), "never two frames at one t"


def test_uniform_spacing_is_the_historical_grid() -> None:
    for n in (2, 3, 24, 150):
        assert spacing.spaced(n, "uniform") == frame_times(n)


def test_eased_curves_bunch_frames_where_they_ease() -> None:
    ease_in_out = spacing.spaced(11, "ease_in_out")
    assert ease_in_out[1] - ease_in_out[0] < 0.05 < ease_in_out[6] - ease_in_out[5]
    ease_in = spacing.spaced(11, "ease_in")
    assert ease_in[1] == pytest.approx(0.01)  # u² at u = 0.1
    ease_out = spacing.spaced(11, "ease_out")
    assert ease_out[-2] == pytest.approx(0.99)
    with pytest.raises(ValueError, match="spacing must be one of"):
        spacing.curve("perceptual")


# ---------------------------------------------------------------- perceptual re-spacing


def cumulative(t: float) -> float:
    """A synthetic transition: slow, then a burst of change around t = 0.6, then slow."""
    return (t + 8 * (1 / (1 + math.exp(-25 * (t - 0.6))) - 1 / (1 + math.exp(15)))) / (
        1 + 8 * (1 / (1 + math.exp(-10)) - 1 / (1 + math.exp(15)))
    )


def test_perceptual_spacing_gives_equal_cumulative_steps() -> None:
    probe = spacing.grid(41)
    distances = [cumulative(b) - cumulative(a) for a, b in zip(probe, probe[1:], strict=False)]
    ts = spacing.perceptual(17, probe, distances)
    assert ts[0] == 0.0 and ts[-1] == 1.0
    # Measured with the probe's own (piecewise-linear) cumulative distance: exactly equal steps.
    warp = spacing.Warp.from_distances(probe, distances)
    steps = [warp.forward(b) - warp.forward(a) for a, b in zip(ts, ts[1:], strict=False)]
    assert steps == pytest.approx([1 / 16] * 16, abs=1e-9)
    # ... and close to equal on the true curve the probe sampled.
    true_steps = [cumulative(b) - cumulative(a) for a, b in zip(ts, ts[1:], strict=False)]
    assert max(true_steps) - min(true_steps) < 0.25 / 16
    # Frames bunch where the change is fast (around 0.6), not on the uniform grid.
    near = sum(1 for t in ts if 0.5 < t < 0.7)
    assert near > 17 * 0.2 * 2


def test_perceptual_spacing_of_an_unchanging_transition_is_uniform() -> None:
    probe = spacing.grid(5)
    assert spacing.perceptual(9, probe, [0.0] * 4) == pytest.approx(spacing.grid(9))


def test_a_warp_restricted_to_a_segment_is_a_curve_on_it() -> None:
    probe = spacing.grid(11)
    distances = [cumulative(b) - cumulative(a) for a, b in zip(probe, probe[1:], strict=False)]
    warp = spacing.Warp.from_distances(probe, distances)
    local = warp.restricted(0.5, 1.0)
    assert local(0.0) == pytest.approx(0.0) and local(1.0) == pytest.approx(1.0)
    assert all(local(a) <= local(b) for a, b in zip(spacing.grid(20), spacing.grid(20)[1:], strict=False))


def test_bad_probes_are_refused() -> None:
    with pytest.raises(ValueError, match="start at 0"):
        spacing.Warp.from_distances([0.1, 1.0], [1.0])
    with pytest.raises(ValueError, match="need 2 distances"):
        spacing.Warp.from_distances([0.0, 0.5, 1.0], [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        spacing.Warp.from_distances([0.0, 1.0], [-1.0])


# ---------------------------------------------------------------- adaptive refinement


def scalar_distance(a: float, b: float) -> float:
    return abs(a - b)


def measured(fn):  # type: ignore[no-untyped-def]
    calls: list[list[float]] = []

    def measure(ts: list[float]) -> list[float]:
        calls.append(list(ts))
        return [fn(t) for t in ts]

    return measure, calls


def test_adaptive_refinement_stops_at_the_threshold() -> None:
    measure, calls = measured(cumulative)
    result = spacing.refine(spacing.grid(9), measure, scalar_distance, threshold=0.04, budget=1000)
    assert result.reason == "threshold"
    assert all(gap <= 0.04 for gap in result.gaps)
    assert len(set(result.ts)) == len(result.ts) == 9 + result.added
    assert result.ts[0] == 0.0 and result.ts[-1] == 1.0
    # The new frames went where the change is.
    added = sorted(set(result.ts) - set(spacing.grid(9)))
    assert all(0.4 < t < 0.8 for t in added)
    assert len(calls) == 1 + result.rounds  # the initial positions, then one call per round


def test_adaptive_refinement_stops_when_the_budget_is_spent_widest_first() -> None:
    measure, _ = measured(cumulative)
    result = spacing.refine(spacing.grid(9), measure, scalar_distance, threshold=0.0, budget=3)
    assert result.reason == "budget" and result.added == 3 and len(result.ts) == 12
    # The first split was the widest gap of the grid: the one around the burst.
    widest = max(range(8), key=lambda i: cumulative(spacing.grid(9)[i + 1]) - cumulative(spacing.grid(9)[i]))
    assert (spacing.grid(9)[widest] + spacing.grid(9)[widest + 1]) / 2 in result.ts


def test_a_true_jump_is_never_split_into_two_frames_at_one_t() -> None:
    measure, _ = measured(lambda t: 0.0 if t < 0.3 else 1.0)
    result = spacing.refine([0.0, 1.0], measure, scalar_distance, threshold=0.1, budget=10_000)
    assert result.reason == "unsplittable"
    assert all(b - a >= spacing.MIN_WIDTH for a, b in zip(result.ts, result.ts[1:], strict=False))
    assert len(result.ts) < 40


def test_a_refused_gap_is_left_alone() -> None:
    measure, _ = measured(lambda t: 0.0 if t < 0.5 else 1.0)
    result = spacing.refine(
        [0.0, 0.5, 1.0], measure, scalar_distance, threshold=0.1, budget=100, can_split=lambda a, b: False
    )
    assert result.added == 0 and result.reason == "unsplittable"


@given(
    values=st.lists(st.floats(min_value=0, max_value=1), min_size=3, max_size=12),
    budget=st.integers(min_value=0, max_value=40),
    per_round=st.integers(min_value=1, max_value=5),
    threshold=st.floats(min_value=0.0, max_value=0.5),
)
@settings(max_examples=60, deadline=None)
def test_refinement_never_places_two_frames_at_one_t(
    values: list[float], budget: int, per_round: int, threshold: float
) -> None:
    def fn(t: float) -> float:  # a random piecewise-constant curve: jumps everywhere
        return values[min(len(values) - 1, int(t * len(values)))]

    measure, _ = measured(fn)
    result = spacing.refine(
        spacing.grid(4), measure, scalar_distance, threshold=threshold, budget=budget, per_round=per_round
    )
    assert len(set(result.ts)) == len(result.ts)
    assert result.ts == sorted(result.ts) and result.ts[0] == 0.0 and result.ts[-1] == 1.0
    assert result.added <= budget
    assert result.reason == "budget" or all(
        g <= threshold or b - a < 2 * spacing.MIN_WIDTH
        for g, a, b in zip(result.gaps, result.ts, result.ts[1:], strict=False)
    )


def test_the_adaptive_threshold_leaves_an_even_transition_alone() -> None:
    ts = spacing.grid(11)
    measure, _ = measured(lambda t: t)
    threshold = spacing.adaptive_threshold([0.1] * 10, 11)
    assert threshold == pytest.approx(0.125)
    assert spacing.refine(ts, measure, scalar_distance, threshold=threshold, budget=50).added == 0


# ---------------------------------------------------------------- the planner: keyframe behaviours


def keys3(**middle: object) -> list[TimelineKeyframe]:
    return [
        TimelineKeyframe(0.0, "a city"),
        TimelineKeyframe(0.5, "a garden", **middle),
        TimelineKeyframe(1.0, "a forest"),
    ]  # type: ignore[arg-type]


def test_a_plain_timeline_plans_and_keys_frames_as_segue_always_did() -> None:
    keys = [
        TimelineKeyframe(0.0, "a city"),
        TimelineKeyframe(0.4, "a garden"),
        TimelineKeyframe(1.0, "a forest"),
    ]
    plans = plan_frames(keys, 11, seed=7)
    assert [p.t for p in plans] == frame_times(11)
    # Digests computed with the frame_key of the previous release (git show 567974b:core/timeline.py).
    assert frame_keys(PIXELS.model_copy(update={"steps": 25}), plans, "rev1")[:3] == [
        "a856808a4461b5b2b9753e80861aced0d31d890f",
        "305dd927fbeb6b39480f922d855a26969106065a",
        "95f46ea20139936bc75f0472b556ef7a6b3c963a",
    ]
    # Whatever the transition's noise path: with one seed it changes nothing.
    for path in ("linear", "normalized", "translate"):
        other = plan_frames(keys, 11, seed=7, noise_path=path)
        assert frame_keys(PIXELS, other) == frame_keys(PIXELS, plans)


def test_hold_adds_frames_showing_the_keyframe_at_its_t() -> None:
    plans = plan_frames(keys3(hold_frames=3), 11, seed=7)
    assert len(plans) == 14
    held = [p for p in plans if p.t == 0.5]
    assert len(held) == 4 and len({frame_key(PIXELS, p) for p in held}) == 1
    assert held[0].prompt_a == "a garden" and held[0].local_t == 0.0
    assert [p.index for p in plans] == list(range(14))
    assert [p.t for p in plans] == sorted(p.t for p in plans)


def test_hold_on_a_keyframe_the_grid_misses_inserts_its_frame() -> None:
    keys = [
        TimelineKeyframe(0.0, "a"),
        TimelineKeyframe(0.33, "m", hold_frames=1),
        TimelineKeyframe(1.0, "b", hold_frames=2),
    ]
    plans = plan_frames(keys, 5, seed=1)
    assert [round(p.t, 2) for p in plans] == [0.0, 0.25, 0.33, 0.33, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert plans[2].prompt_a == "m" and plans[2].local_t == 0.0
    assert {frame_key(PIXELS, p) for p in plans[-3:]} == {frame_key(PIXELS, plans[-1])}


def test_a_cut_shows_the_segments_first_keyframe_until_the_next() -> None:
    keys = [
        TimelineKeyframe(0.0, "a", cut=True),
        TimelineKeyframe(0.5, "m"),
        TimelineKeyframe(1.0, "b", seed=9),
    ]
    plans = plan_frames(keys, 9, seed=7)
    first = frame_key(PIXELS, plans[0])
    cut = [p for p in plans if p.t < 0.5]
    assert [p.t for p in cut] == [0.0, 0.125, 0.25, 0.375]  # frames keep their own t...
    assert {frame_key(PIXELS, p) for p in cut} == {first}  # ...but show keyframe a exactly (prompt and noise)
    assert plans[4].prompt_a == "m" and plans[4].local_t == 0.0  # the jump, at the next keyframe
    assert cut_boundaries(keys) == [0.5]
    # A cut on the last segment still ends on the end keyframe.
    last = plan_frames(
        [TimelineKeyframe(0.0, "a"), TimelineKeyframe(0.5, "m", cut=True), TimelineKeyframe(1.0, "b")],
        9,
        seed=7,
    )
    assert (last[-1].prompt_b, last[-1].local_t) == ("b", 1.0) and last[-2].local_t == 0.0


def test_per_segment_frames_space_each_segment_on_its_own() -> None:
    keys = [
        TimelineKeyframe(0.0, "a", frames=4),
        TimelineKeyframe(0.25, "m"),
        TimelineKeyframe(1.0, "b", frames=2),
    ]
    ts = base_times(keys, 9, "uniform")
    # Segment 0: 4 frames from 0; segment 1 (no count): the 9-frame grid puts 6 of its points there.
    assert ts == pytest.approx([0.0, 0.0625, 0.125, 0.1875, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0])
    eased = base_times(keys, 9, "ease_in_out")
    assert eased[0] == 0.0 and eased[4] == 0.25 and eased[-1] == 1.0  # every segment starts on its keyframe
    plans = plan_frames(keys, 9, seed=1)
    assert plans[4].prompt_a == "m" and plans[4].local_t == 0.0


def test_noise_travels_between_seeded_keyframes_only() -> None:
    keys = [
        TimelineKeyframe(0.0, "a", seed=1),
        TimelineKeyframe(0.25, "m"),
        TimelineKeyframe(0.5, "n", seed=3),
        TimelineKeyframe(1.0, "b"),
    ]
    anchors = [(0.0, 1), (0.5, 3), (1.0, 7)]
    assert noise_at(0.25, anchors) == (1, 3, 0.5)  # the unseeded keyframe does not pin the noise
    assert noise_at(0.5, anchors) == (3, 7, 0.0)
    assert noise_at(1.0, anchors) == (3, 7, 1.0)
    plans = plan_frames(keys, 5, seed=7, noise_path="normalized")
    assert [(p.seed_a, p.seed_b, p.noise_t) for p in plans] == [
        (1, 3, 0.0),
        (1, 3, 0.5),
        (3, 7, 0.0),
        (3, 7, 0.5),
        (3, 7, 1.0),
    ]
    # A frame between two seeds is keyed by both, its noise t and its path; an endpoint by its seed alone.
    mid = plans[1]
    assert frame_key(PIXELS, mid) != frame_key(
        PIXELS, mid.__class__(**{**mid.__dict__, "noise_path": "slerp"})
    )
    assert frame_key(PIXELS, plans[4]) == frame_key(PIXELS.model_copy(update={"seed": 7}), plans[4])
    seeded = plans[0].__class__(**{**plans[0].__dict__, "seed_a": None, "seed_b": None})
    assert frame_key(PIXELS.model_copy(update={"seed": 1}), seeded) == frame_key(PIXELS, plans[0])


def test_a_segments_noise_path_overrides_the_transitions() -> None:
    keys = [
        TimelineKeyframe(0.0, "a", seed=1, noise_interpolation="translate"),
        TimelineKeyframe(1.0, "b", seed=2),
    ]
    assert {p.noise_path for p in plan_frames(keys, 4, seed=7, noise_path="slerp")} == {"translate"}


def test_the_switch_step_is_part_of_an_in_between_frames_identity() -> None:
    plans = plan_frames(keys3(switch_step=5), 9, seed=7)
    inside = plans[6]  # segment 1, local t 0.5
    assert inside.switch_step == 5
    plain = inside.__class__(**{**inside.__dict__, "switch_step": None})
    assert frame_key(PIXELS, inside) != frame_key(PIXELS, plain)
    # On its keyframe the frame is prompt_a alone anyway: the switch changes nothing.
    assert frame_key(PIXELS, plans[4]) == frame_key(
        PIXELS, plans[4].__class__(**{**plans[4].__dict__, "switch_step": None})
    )
    # A switch at or after the last step is prompt_a for every step: the keyframe's own frame.
    late = inside.__class__(**{**inside.__dict__, "switch_step": 25})
    assert frame_key(PIXELS, late) == frame_key(PIXELS, plans[4])


def test_too_many_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="plans 14 frames"):
        plan_frames(keys3(hold_frames=3), 11, max_frames=12)


def test_an_old_render_snapshot_loads_with_keyframe_defaults() -> None:
    old = {
        "frames": 8,
        "seed": 7,
        "model": "segue-mini",
        "keyframes": [{"position": 0.0, "prompt": "a city"}, {"position": 1.0, "prompt": "a forest"}],
    }
    snapshot = RenderSnapshot.model_validate(old)
    assert snapshot.spacing == "uniform" and snapshot.in_between == "full"
    assert snapshot.keyframes[0] == KeyframeSnapshot(position=0.0, prompt="a city")
    assert (snapshot.keyframes[0].seed, snapshot.keyframes[0].hold_frames, snapshot.keyframes[0].cut) == (
        None,
        0,
        False,
    )


# ---------------------------------------------------------------- trajectory sharing


def test_sharing_makes_odd_frames_in_betweens_of_their_neighbours() -> None:
    plans = share(plan_frames([TimelineKeyframe(0.0, "a"), TimelineKeyframe(1.0, "b")], 7, seed=1), 10)
    assert [(p.start_step, p.anchor_a, p.anchor_b) for p in plans] == [
        (0, None, None),
        (10, 0, 2),
        (0, None, None),
        (10, 2, 4),
        (0, None, None),
        (10, 4, 6),
        (0, None, None),
    ]
    keys = frame_keys(PIXELS, plans)
    assert len(set(keys)) == 7
    # An in-between's identity follows its anchors: change an anchor's seed, the in-between changes too.
    moved = list(plans)
    moved[2] = moved[2].__class__(**{**moved[2].__dict__, "seed_a": 99, "seed_b": 99})
    other = frame_keys(PIXELS, moved)
    assert other[1] != keys[1] and other[3] != keys[3] and other[5] == keys[5]


def test_sharing_never_blends_over_a_cut_and_pins_keyframe_frames() -> None:
    keys = [
        TimelineKeyframe(0.0, "a"),
        TimelineKeyframe(0.45, "m", cut=True),
        TimelineKeyframe(0.7, "n"),
        TimelineKeyframe(1.0, "b"),
    ]
    plans = share(plan_frames(keys, 12, seed=1), 5)
    in_betweens = [p for p in plans if p.start_step]
    assert in_betweens, "sharing made no in-betweens: nothing below is checked"
    for p in in_betweens:
        assert p.anchor_a is not None and p.anchor_b is not None
        left, right = plans[p.anchor_a], plans[p.anchor_b]
        assert left.segment == p.segment
        assert right.segment == p.segment or right.local_t == 0.0
        assert p.local_t not in (0.0, 1.0)
    assert share(plans, 0) == plans
