"""MoCE in the planner and the frame key: the concepts model, early prompts per frame, N per frame, and
frame identity (unchanged without concepts, different with them, the early prompts hashed)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from core.params import (
    Concepts,
    KeyframeSettings,
    KeyframeSnapshot,
    PixelSettings,
    RenderSnapshot,
    error_message,
    field_of,
)
from core.timeline import (
    FramePlan,
    KeyConcepts,
    TimelineKeyframe,
    frame_key,
    frame_keys,
    keys_of,
    plan_frames,
)

PIXELS = PixelSettings(model="segue-tiny", seed=7, steps=20, width=64, height=64)
CITY, BOAT_DESERT, FOREST = "a city at night", "a boat in the desert", "a forest"
BOAT = KeyConcepts("a boat", 8)


def keys(middle: KeyConcepts | None = BOAT, **extra: object) -> list[TimelineKeyframe]:
    return [
        TimelineKeyframe(0.0, CITY, **extra),
        TimelineKeyframe(0.5, BOAT_DESERT, concepts=middle),
        TimelineKeyframe(1.0, FOREST),
    ]  # type: ignore[arg-type]


# ---------------------------------------------------------------- the model


def test_concepts_default_to_auto_and_check_their_fields() -> None:
    c = Concepts(first="a boat", second="a desert")
    assert c.switch_step == "auto" and c.is_auto
    assert Concepts(first="a boat", second="a desert", switch_step="12").switch_step == 12
    assert Concepts(first="a boat", second="x", first_description="  ").first_description is None
    cases = [
        ({"first": " ", "second": "b"}, "concepts.first", "concepts.first must not be empty"),
        ({"first": "a", "second": "b", "switch_step": 151}, "concepts.switch_step", "between 0 and 150"),
        ({"first": "a", "second": "b", "switch_step": "soon"}, "concepts.switch_step", 'or "auto"'),
        ({"first": "a", "second": "b", "switch_step": 2.5}, "concepts.switch_step", 'or "auto"'),
        ({"first": "a"}, "concepts.second", "required"),
        ({"first": "a", "second": "b", "third": "c"}, "concepts.third", "not a known field"),
    ]
    for value, field, needle in cases:
        with pytest.raises(ValidationError) as info:
            KeyframeSettings(concepts=value)  # type: ignore[arg-type]
        error = info.value.errors()[0]
        assert field_of(error["loc"]) == field
        assert needle in error_message(dict(error), field)


def test_old_snapshots_load_without_concepts_and_auto_cannot_be_planned() -> None:
    assert KeyframeSnapshot.model_validate({"position": 0.0, "prompt": "x"}).concepts is None
    snapshot = RenderSnapshot.model_validate(
        {
            "seed": 1,
            "keyframes": [
                {"position": 0.0, "prompt": CITY},
                {
                    "position": 0.5,
                    "prompt": BOAT_DESERT,
                    "concepts": {"first": "a boat", "second": "a desert"},
                },
                {"position": 1.0, "prompt": FOREST},
            ],
        }
    )
    with pytest.raises(ValueError, match="keyframe at 0.5 has switch step 'auto'"):
        keys_of(snapshot)
    resolved = snapshot.model_copy(deep=True)
    resolved.keyframes[1].concepts = Concepts(first="a boat", second="a desert", switch_step=6)
    assert keys_of(resolved)[1].concepts == KeyConcepts("a boat", 6)


# ---------------------------------------------------------------- the planner


def test_frames_touching_a_moce_keyframe_get_early_prompts_and_its_switch_step() -> None:
    plans = plan_frames(keys(), 5, seed=7)  # t = 0, .25, .5, .75, 1
    start, left, on, right, end = plans
    # Both segments touch the MoCE keyframe: the first concept stands in for its prompt in the early steps.
    assert (left.early_a, left.early_b, left.switch_step) == (CITY, "a boat", 8)
    assert (on.early_a, on.early_b, on.switch_step, on.local_t) == ("a boat", FOREST, 8, 0.0)
    assert (right.early_a, right.early_b) == ("a boat", FOREST)
    assert (end.early_a, end.early_b, end.local_t) == ("a boat", FOREST, 1.0)
    assert (start.early_a, start.early_b) == (CITY, "a boat")
    # Without concepts nothing changes.
    plain = plan_frames(keys(None), 5, seed=7)
    assert all(p.early_a is None and p.early_b is None and p.switch_step is None for p in plain)


def test_moce_takes_precedence_over_the_plain_switch_and_n_blends_between_two_moce_keyframes() -> None:
    ordered = [
        TimelineKeyframe(0.0, CITY, switch_step=3, concepts=KeyConcepts("a city", 4)),
        TimelineKeyframe(1.0, BOAT_DESERT, concepts=KeyConcepts("a boat", 12)),
    ]
    plans = plan_frames(ordered, 5, seed=7)
    assert [p.switch_step for p in plans] == [4, 6, 8, 10, 12]
    assert {(p.early_a, p.early_b) for p in plans} == {("a city", "a boat")}
    # Untouched segments keep their plain switch step.
    three = [
        TimelineKeyframe(0.0, CITY, switch_step=3),
        TimelineKeyframe(0.5, FOREST),
        TimelineKeyframe(1.0, BOAT_DESERT, concepts=BOAT),
    ]
    first, second = plan_frames(three, 5, seed=7)[1], plan_frames(three, 5, seed=7)[3]
    assert (first.switch_step, first.early_a) == (3, None)
    assert (second.switch_step, second.early_a, second.early_b) == (8, FOREST, "a boat")


def test_a_cut_segment_from_a_moce_keyframe_shows_moce_proper() -> None:
    ordered = [
        TimelineKeyframe(0.0, CITY),
        TimelineKeyframe(0.5, BOAT_DESERT, cut=True, concepts=BOAT),
        TimelineKeyframe(1.0, FOREST),
    ]
    plans = plan_frames(ordered, 5, seed=7)
    assert (plans[3].local_t, plans[3].early_a, plans[3].switch_step) == (0.0, "a boat", 8)
    assert frame_key(PIXELS, plans[3]) == frame_key(PIXELS, plans[2])


# ---------------------------------------------------------------- frame identity


def test_frame_keys_without_concepts_are_unchanged_and_with_them_differ_where_the_early_steps_do() -> None:
    base = plan_frames(keys(None), 9, seed=7)
    moce = plan_frames(keys(), 9, seed=7)
    before, after = frame_keys(PIXELS, base), frame_keys(PIXELS, moce)
    # The frames on the start and end keyframes: their early blend is their own prompt, the very same frames.
    assert after[0] == before[0] and after[-1] == before[-1]
    # Every other frame sees the first concept in its early steps, the one on the keyframe (local t 0) too.
    assert all(a != b for a, b in zip(after[1:-1], before[1:-1], strict=True))
    # A frame between two plain keyframes keeps its key: a four-keyframe timeline, MoCE on the third.
    four = [
        TimelineKeyframe(0.0, CITY),
        TimelineKeyframe(0.25, FOREST),
        TimelineKeyframe(0.5, BOAT_DESERT, concepts=BOAT),
        TimelineKeyframe(1.0, CITY),
    ]
    untouched = [p for p in plan_frames(four, 9, seed=7) if p.segment == 0 and p.local_t < 1]
    plain = [
        p
        for p in plan_frames([replace(k, concepts=None) for k in four], 9, seed=7)
        if p.segment == 0 and p.local_t < 1
    ]
    assert frame_keys(PIXELS, untouched) == frame_keys(PIXELS, plain)


def test_the_frame_key_hashes_the_early_prompts_and_n() -> None:
    on = plan_frames(keys(), 5, seed=7)[2]  # exactly on the MoCE keyframe: local t 0
    key = frame_key(PIXELS, on)
    assert frame_key(PIXELS, replace(on, early_a="a sailboat")) != key
    assert frame_key(PIXELS, replace(on, switch_step=9)) != key
    assert frame_key(PIXELS, replace(on, early_b="anything")) == key  # at local t 0 only early_a counts
    mid = plan_frames(keys(), 5, seed=7)[3]
    assert frame_key(PIXELS, replace(mid, early_b="a wood")) != frame_key(PIXELS, mid)
    # The plain switch's key is a different thing: prompt_a alone in the early steps.
    plain_switch = FramePlan(0, 0.75, 1, BOAT_DESERT, FOREST, 0.5, switch_step=8)
    assert frame_key(PIXELS, plain_switch) != frame_key(PIXELS, mid)
    # An early blend equal to the blend is the plain frame, switch or not.
    same = replace(mid, early_a=BOAT_DESERT, early_b=FOREST)
    assert frame_key(PIXELS, same) == frame_key(
        PIXELS, replace(mid, early_a=None, early_b=None, switch_step=None)
    )
    # N = 0 is no MoCE; N >= steps is the early blend for every step: that frame's plain key.
    assert frame_key(PIXELS, replace(on, switch_step=0)) == frame_key(
        PIXELS, replace(on, early_a=None, early_b=None, switch_step=None)
    )
    whole = frame_key(PIXELS, replace(on, switch_step=PIXELS.steps))
    assert whole == frame_key(PIXELS, FramePlan(0, 0.5, 1, "a boat", FOREST, 0.0))
