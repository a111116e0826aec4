"""What the API takes and gives, built from core.params: no limit or default is declared here again."""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_type_hints

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, model_validator

from core.events import RenderStats
from core.metrics import Summary
from core.params import (
    MAX_ID,
    SETTING_FIELDS,
    KeyframeSettings,
    ModelName,
    OptionalPrompt,
    Position,
    Prompt,
    RenderSettings,
    Title,
    ranged,
)
from core.statuses import CancellableStatus
from infra.config import get_settings


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


def _based_on() -> Any:
    """The optional `version` a write names (the If-Match header works too); never part of a dump."""
    return Field(
        None,
        ge=1,
        le=MAX_ID,
        exclude=True,
        description="the transition version this write is based on; if it is no longer the newest, "
        "the write is refused with 409 and the current state (omit it to write regardless)",
    )


def _all_optional(name: str, base: type[BaseModel], doc: str) -> type[BaseModel]:
    """The same fields and checks as `base`, each optional with None meaning 'not given'."""
    fields: dict[str, Any] = {
        field: (
            info.rebuild_annotation() | None,
            Field(None, json_schema_extra=info.json_schema_extra, description=info.description),
        )
        for field, info in base.model_fields.items()
    }
    fields["version"] = (int | None, _based_on())
    model = create_model(name, __config__=ConfigDict(extra="forbid"), __doc__=doc, **fields)
    return model


TimeValue = Annotated[
    float | str,
    Field(
        description='a time on the video\'s clock: seconds (2.5) or "m:ss.s" ("0:02.5"); used instead of '
        "position, it places the keyframe where the frame playing at that time is (docs/animatics.md)"
    ),
]
HoldSeconds = Annotated[
    float, Field(ge=0, le=600, description="the hold in seconds instead of hold_frames (x fps, rounded)")
]


class KeyframeCreate(KeyframeSettings):
    """A keyframe: its position (or time) and prompt, and optionally its own seed, hold, cut and segment
    settings."""

    model_config = ConfigDict(extra="forbid")

    position: Position | None = None
    #: May be empty on a keyframe with an image (the worker captions the picture, docs/image-endpoints.md).
    prompt: OptionalPrompt = ""
    time: TimeValue | None = None
    hold_seconds: HoldSeconds | None = None
    version: int | None = _based_on()


if TYPE_CHECKING:  # the checker sees plain models; at run time they are built from the create shapes

    class TransitionUpdate(BaseModel):
        version: int | None

    class KeyframeUpdate(BaseModel):
        version: int | None

else:
    TransitionUpdate = _all_optional(
        "TransitionUpdate", TransitionCreate, "A change to a transition: only the fields given change."
    )
    KeyframeUpdate = _all_optional("KeyframeUpdate", KeyframeCreate, "A change to a keyframe.")


class PromptWarning(BaseModel):
    """Something saved that will not render as written (e.g. a prompt past the encoder's window)."""

    field: str
    message: str


class KeyframeImageOut(BaseModel):
    """A keyframe's image: a PNG in the frame store under the SHA-256 of its bytes."""

    url: str
    width: int
    height: int
    sha256: str
    caption: str | None = Field(
        None,
        description="the text condition chosen for the picture when the keyframe has no prompt (Segue-mini's"
        " CLIP, from its world's vocabulary); null until a render has chosen it, or when the keyframe has a"
        " prompt",
    )

    @model_validator(mode="before")
    @classmethod
    def _with_url(cls, value: Any) -> Any:
        if isinstance(value, dict) and "url" not in value and "sha256" in value:
            from infra.storage import get_store

            return {**value, "url": get_store().url(value["sha256"])}
        return value


class KeyframeOut(KeyframeSettings):
    """A keyframe as the API shows it: its place, prompt and role, and its own settings (core.params)."""

    model_config = ConfigDict(from_attributes=True, extra="ignore")

    image: KeyframeImageOut | None = Field(
        None, description="its image (docs/image-endpoints.md): {url, width, height, sha256}; null: none"
    )

    id: int
    position: float
    prompt: str
    is_start: bool
    is_end: bool
    time: float | None = Field(None, description="when the keyframe shows, in seconds (its position at fps)")
    hold_seconds: float | None = Field(None, description="hold_frames / fps")


class RenderSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # RenderSummary.model_validate(render_row)

    id: int
    status: CancellableStatus
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
    duration: float | None = Field(None, description="seconds the planned frames play at fps, holds included")
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
    time: float | None = Field(None, description="when the frame plays: index / fps, in seconds")
    seed_a: int | None = Field(None, description="noise from this seed... (null: the transition's seed)")
    seed_b: int | None = Field(None, description="...towards this one, at noise_t along noise_path")
    noise_t: float = 0.0
    noise_path: str = "slerp"
    switch_step: int | None = Field(None, description="steps before this one are conditioned on prompt_a")
    start_step: int = Field(0, description="> 0: a shared in-between, started at this step")
    early_a: str | None = Field(None, description="MoCE: steps before switch_step see this blend")
    early_b: str | None = Field(None, description="(null: prompt_a alone, the plain switch)")


class RenderOut(BaseModel):
    id: int
    transition_id: int
    transition_version: int
    status: CancellableStatus
    model: str
    error: str | None
    frames: list[FrameOut]
    stats: RenderStats
    created_at: datetime


# A render just started (or listed): a RenderSummary under the name the OpenAPI document has always given it.
class RenderCreated(RenderSummary):
    pass


class EditOut(BaseModel):
    """One entry of a transition's history (`before`/`after`: what changed; null on rows from before it)."""

    id: int | None = None
    version: int
    kind: str
    summary: str = ""
    payload: dict[str, Any]
    created_at: datetime
    link_id: int | None = Field(None, description="the share link the edit came through; null: the owner")
    who: str = "owner"
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    target_id: int | None = Field(None, description="undo/redo: the id of the edit undone or redone")
    undone: bool = False


class RevertRequest(BaseModel):
    """Jump back: make the transition what it was at `to_version` (one new edit, undoable)."""

    model_config = ConfigDict(extra="forbid")

    to_version: int = Field(ge=1, le=MAX_ID)
    version: int | None = _based_on()


class BasedOn(BaseModel):
    """An optional body for undo/redo: the version the request is based on (or the If-Match header)."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = _based_on()


LinkRole = Literal["view", "comment", "edit"]


class LinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: LinkRole
    expires_at: datetime | None = Field(None, description="when the link stops working (UTC if no zone)")


class LinkOut(BaseModel):
    id: int
    transition_id: int
    role: LinkRole
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool


class LinkCreated(LinkOut):
    token: str = Field(description="shown once: only its SHA-256 is stored")
    url: str = Field(description="open it in a browser: /s/<token>")


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
    "RenderSummary",
    "TransitionCreate",
    "TransitionOut",
    "TransitionUpdate",
]


class FlagOut(BaseModel):
    kind: Literal["jump", "backwards", "neither", "plateau"]
    message: str


class SimilarityOut(BaseModel):
    """How much the frame looks like its bracketing prompts a and b (the scorer's similarity)."""

    a: float | None
    b: float | None


class FrameScoreOut(BaseModel):
    index: int
    t: float
    progress: float | None = Field(description="0: looks like the keyframe before, 1: like the one after")
    change: float | None = Field(description="the scorer's distance to the next frame")
    similarity: SimilarityOut
    flags: list[FlagOut]


def _summary_fields() -> dict[str, Any]:
    """core.metrics.Summary's numbers as API fields, each with its description: declared once, in core."""
    hints = get_type_hints(Summary)
    return {
        f.name: (hints[f.name], Field(description=f.metadata.get("doc"))) for f in dataclass_fields(Summary)
    }


class ScoreSummaryOut(create_model("SummaryFields", **_summary_fields())):  # type: ignore[misc]
    scorer: str
    frames_scored: int
    istd: float | None = Field(
        None,
        description="std of adjacent RMS pixel distances (Smooth Diffusion's ISTD), on 32x32 grey thumbnails",
    )
    interp_score: float | None = Field(
        None, description="mean of max(100 cos, 0) of each frame to the nearer of its prompts (CLIP)"
    )
    noise_std: list[float] = Field(
        [], description="each frame's expected starting-noise std: linear mixing of two seeds shrinks it"
    )


class ProblemOut(BaseModel):
    """A stretch that goes wrong (core.problems): flags grouped, ranked by severity, with where to fix it."""

    id: str = Field(description='stable for the same frames, e.g. "jump-9-10"')
    kind: Literal["jump", "backwards", "neither", "plateau"]
    frames: list[int] = Field(description="[first, last] frame index involved")
    t: float = Field(description="where a fix goes: for a jump, the midpoint of its two frames' t")
    severity: float = Field(description="0..1, higher is worse (core/problems.py documents each score)")
    message: str
    segment: int


class ScoresOut(BaseModel):
    render_id: int
    scorer: str | None
    scorers: list[str]
    frames: list[FrameScoreOut]
    summary: ScoreSummaryOut | None
    problems: list[ProblemOut] = Field([], description="the flags grouped into problems, worst first")
