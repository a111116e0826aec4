"""What the API takes and gives. Every limit lives here, with a message that names the field and its range."""

from __future__ import annotations

import math
import secrets
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.config import get_settings

Scheduler = Literal["dpmsolver", "ddim", "euler"]
TextInterpolation = Literal["lerp", "slerp"]
RenderStatus = Literal["queued", "running", "done", "failed", "cancelled"]

SCHEDULER_LABELS = {"dpmsolver": "DPM-Solver++ (multistep)", "ddim": "DDIM", "euler": "Euler"}
MAX_SEED = 2**32 - 1
MAX_PROMPT_CHARS = 2000


class FieldError(Exception):
    """A request that is well-formed but not allowed; becomes a 422 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _between(field: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{field} must be between {low:g} and {high:g} (got {value:g})")


def check_prompt(field: str, value: str, *, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise ValueError(f"{field} must not be empty")
    if len(value) > MAX_PROMPT_CHARS:
        raise ValueError(f"{field} must be at most {MAX_PROMPT_CHARS} characters (got {len(value)})")
    return value


def check_frames(value: int) -> int:
    _between("frames", value, 2, get_settings().max_frames)
    return value


def check_steps(value: int) -> int:
    _between("steps", value, 1, get_settings().max_steps)
    return value


def check_guidance(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("guidance_scale must be a finite number between 0 and 30")
    _between("guidance_scale", value, 0, 30)
    return value


def check_size(field: str, value: int) -> int:
    top = get_settings().max_size
    if not 64 <= value <= top or value % 8:
        raise ValueError(f"{field} must be a multiple of 8 between 64 and {top} (got {value})")
    return value


def check_seed(value: int) -> int:
    _between("seed", value, 0, MAX_SEED)
    return value


def check_batch(value: int) -> int:
    _between("batch_size", value, 1, get_settings().max_batch_size)
    return value


def check_model(value: str) -> str:
    allowed = get_settings().models
    if value not in allowed:
        raise ValueError(f"model '{value}' is not available here; choose one of: {', '.join(allowed)}")
    return value


def check_position(value: float) -> float:
    if not math.isfinite(value) or not 0.0 < value < 1.0:
        raise ValueError(f"position must be strictly between 0 and 1 (got {value:g})")
    return value


class _Settings(BaseModel):
    """Validators shared by create and update (None means 'not given' in an update)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("title", check_fields=False)
    @classmethod
    def _title(cls, v: str | None) -> str | None:
        if v is not None and len(v.strip()) > 200:
            raise ValueError(f"title must be at most 200 characters (got {len(v.strip())})")
        return v.strip() if v is not None else v

    @field_validator("start_prompt", "end_prompt", check_fields=False)
    @classmethod
    def _prompt(cls, v: str | None, info: Any) -> str | None:
        return None if v is None else check_prompt(info.field_name, v)

    @field_validator("negative_prompt", check_fields=False)
    @classmethod
    def _negative(cls, v: str | None) -> str | None:
        return None if v is None else check_prompt("negative_prompt", v, required=False)

    @field_validator("frames", check_fields=False)
    @classmethod
    def _frames(cls, v: int | None) -> int | None:
        return None if v is None else check_frames(v)

    @field_validator("steps", check_fields=False)
    @classmethod
    def _steps(cls, v: int | None) -> int | None:
        return None if v is None else check_steps(v)

    @field_validator("guidance_scale", check_fields=False)
    @classmethod
    def _guidance(cls, v: float | None) -> float | None:
        return None if v is None else check_guidance(v)

    @field_validator("width", "height", check_fields=False)
    @classmethod
    def _size(cls, v: int | None, info: Any) -> int | None:
        return None if v is None else check_size(info.field_name, v)

    @field_validator("seed", check_fields=False)
    @classmethod
    def _seed(cls, v: int | None) -> int | None:
        return None if v is None else check_seed(v)

    @field_validator("batch_size", check_fields=False)
    @classmethod
    def _batch(cls, v: int | None) -> int | None:
        return None if v is None else check_batch(v)

    @field_validator("model", check_fields=False)
    @classmethod
    def _model(cls, v: str | None) -> str | None:
        return None if v is None else check_model(v)


class TransitionCreate(_Settings):
    title: str = ""
    start_prompt: str
    end_prompt: str
    negative_prompt: str = ""
    frames: int = 24
    seed: int = Field(default_factory=lambda: secrets.randbelow(MAX_SEED + 1))
    steps: int = 25
    guidance_scale: float = 7.5
    width: int | None = None  # default: the configured size for the model
    height: int | None = None
    scheduler: Scheduler = "dpmsolver"
    text_interpolation: TextInterpolation = "lerp"
    batch_size: int = 3
    model: str | None = None  # default: SEGUE_MODEL


class TransitionUpdate(_Settings):
    title: str | None = None
    start_prompt: str | None = None
    end_prompt: str | None = None
    negative_prompt: str | None = None
    frames: int | None = None
    seed: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    width: int | None = None
    height: int | None = None
    scheduler: Scheduler | None = None
    text_interpolation: TextInterpolation | None = None
    batch_size: int | None = None
    model: str | None = None


class KeyframeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: float
    prompt: str

    @field_validator("position")
    @classmethod
    def _position(cls, v: float) -> float:
        return check_position(v)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str) -> str:
        return check_prompt("prompt", v)


class KeyframeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: float | None = None
    prompt: str | None = None

    @field_validator("position")
    @classmethod
    def _position(cls, v: float | None) -> float | None:
        return None if v is None else check_position(v)

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str | None) -> str | None:
        return None if v is None else check_prompt("prompt", v)


class Warning_(BaseModel):
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


class TransitionOut(BaseModel):
    id: int
    title: str
    version: int
    start_prompt: str
    end_prompt: str
    negative_prompt: str
    frames: int
    seed: int
    steps: int
    guidance_scale: float
    width: int
    height: int
    scheduler: Scheduler
    text_interpolation: TextInterpolation
    batch_size: int
    model: str
    keyframes: list[KeyframeOut]
    warnings: list[Warning_] = []
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


class RenderStats(BaseModel):
    frames_total: int
    frames_computed: int
    frames_reused: int
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
