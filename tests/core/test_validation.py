"""Input validation messages name the field and the allowed range."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.schemas import KeyframeCreate, KeyframeUpdate, TransitionCreate, TransitionUpdate


def errors_of(model: type, **data: object) -> dict[str, str]:
    from services.errors import validation_errors

    with pytest.raises(ValidationError) as info:
        model(**data)
    return {e["field"]: e["msg"] for e in validation_errors(list(info.value.errors()))}


def test_every_bad_setting_is_reported_at_once_with_its_range() -> None:
    errors = errors_of(
        TransitionCreate,
        start_prompt="",
        end_prompt="b",
        frames=0,
        steps=500,
        guidance_scale=float("inf"),
        width=63,
        height=4096,
        batch_size=99,
    )
    assert errors == {
        "start_prompt": "start_prompt must not be empty",
        "frames": "frames must be between 2 and 600 (got 0)",
        "steps": "steps must be between 1 and 150 (got 500)",
        "guidance_scale": "guidance_scale must be a finite number between 0 and 30",
        "width": "width must be a multiple of 8 between 64 and 1024 (got 63)",
        "height": "height must be a multiple of 8 between 64 and 1024 (got 4096)",
        "batch_size": "batch_size must be between 1 and 16 (got 99)",
    }


def test_unknown_fields_and_missing_prompts_are_named() -> None:
    errors = errors_of(TransitionCreate, start_prompt="a", frame=3)
    assert errors["end_prompt"] == "end_prompt is required"
    assert errors["frame"] == "frame is not a known field"


def test_updates_validate_only_what_is_given() -> None:
    assert TransitionUpdate(title="x").model_dump(exclude_none=True) == {"title": "x"}
    assert "frames" in errors_of(TransitionUpdate, frames=1)


@pytest.mark.parametrize("position", [0.0, 1.0, -0.1, 1.1, float("nan")])
def test_keyframe_positions_are_strictly_inside_the_timeline(position: float) -> None:
    assert "strictly between 0 and 1" in errors_of(KeyframeCreate, position=position, prompt="x")["position"]
    assert "strictly between 0 and 1" in errors_of(KeyframeUpdate, position=position)["position"]


def test_prompts_are_trimmed_and_bounded() -> None:
    assert KeyframeCreate(position=0.5, prompt="  a garden  ").prompt == "a garden"
    assert "at most 2000 characters" in errors_of(KeyframeCreate, position=0.5, prompt="x" * 2001)["prompt"]
