"""What the API takes and gives, built from core.params: no limit or default is declared here again."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from app.config import get_settings
from core.events import RenderStats
from core.params import (
    SETTING_FIELDS,
    ModelName,
    OptionalPrompt,
    Position,
    Prompt,
    RenderSettings,
    Title,
    ranged,
)

RenderStatus = Literal["queued", "running", "done", "failed", "cancelled"]


def _allowed_model(value: str) -> str:
    allowed = get_settings().models
    if value not in allowed:
        raise ValueError(f"model '{value}' is not available here; choose one of: {', '.join(allowed)}")
    return value


AllowedModel = Annotated[ModelName, AfterValidator(_allowed_model)]


class TransitionCreate(RenderSettings):
    """A new transition: its two prompts and its settings (defaults from core.params and the config)."""

    title: Title = ""
    start_prompt: Prompt
    end_prompt: Prompt
    negative_prompt: OptionalPrompt = ""
    width: ranged("width", int) | None = None  # type: ignore[valid-type]  # default: the model's size
    height: ranged("height", int) | None = None  # type: ignore[valid-type]
    model: AllowedModel | None = None  # type: ignore[assignment]  # default: SEGUE_MODEL


def _all_optional(name: str, base: type[BaseModel], doc: str) -> type[BaseModel]:
    """The same fields and checks as `base`, each optional with None meaning 'not given'."""
    fields: dict[str, Any] = {
        field: (
            info.rebuild_annotation() | None,
            Field(None, json_schema_extra=info.json_schema_extra, description=info.description),
        )
        for field, info in base.model_fields.items()
    }
    model = create_model(name, __config__=ConfigDict(extra="forbid"), __doc__=doc, **fields)
    return model


class KeyframeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: Position
    prompt: Prompt


if TYPE_CHECKING:  # the checker sees plain models; at run time they are built from the create shapes

    class TransitionUpdate(BaseModel): ...

    class KeyframeUpdate(BaseModel): ...

else:
    TransitionUpdate = _all_optional(
        "TransitionUpdate", TransitionCreate, "A change to a transition: only the fields given change."
    )
    KeyframeUpdate = _all_optional("KeyframeUpdate", KeyframeCreate, "A change to a keyframe.")


class PromptWarning(BaseModel):
    """Something saved that will not render as written (e.g. a prompt past the encoder's window)."""

    field: str
    message: str


class KeyframeOut(BaseModel):
    id: int
    position: float
    prompt: str
    is_start: bool
    is_end: bool


class RenderSummary(BaseModel):
    id: int
    status: RenderStatus
    transition_version: int


class TransitionOut(RenderSettings):
    model_config = ConfigDict(extra="ignore")

    id: int
    title: str
    version: int
    start_prompt: str
    end_prompt: str
    keyframes: list[KeyframeOut]
    warnings: list[PromptWarning] = []
    latest_render: RenderSummary | None = None
    created_at: datetime
    updated_at: datetime


class FrameOut(BaseModel):
    index: int
    t: float
    status: str
    url: str | None
    segment: int
    local_t: float
    prompt_a: str
    prompt_b: str
    reused: bool
    seconds: float | None


class RenderOut(BaseModel):
    id: int
    transition_id: int
    transition_version: int
    status: RenderStatus
    model: str
    error: str | None
    frames: list[FrameOut]
    stats: RenderStats
    created_at: datetime


class RenderCreated(BaseModel):
    id: int
    status: RenderStatus
    transition_version: int


class EditOut(BaseModel):
    version: int
    kind: str
    payload: dict[str, Any]
    created_at: datetime


__all__ = [
    "SETTING_FIELDS",
    "EditOut",
    "FrameOut",
    "KeyframeCreate",
    "KeyframeOut",
    "KeyframeUpdate",
    "PromptWarning",
    "RenderCreated",
    "RenderOut",
    "RenderStats",
    "RenderStatus",
    "RenderSummary",
    "TransitionCreate",
    "TransitionOut",
    "TransitionUpdate",
]
