"""ONE definition of a render's settings: names, defaults, limits and allowed values.

The API schemas, the HTML form (hints and defaults), the engine's input check and the frame key all read
this module, so a limit changes in one place. Messages name the field and its allowed range.

Hard limits are what the engine accepts; a deployment may lower the caps of frames, size, steps and batch
size (SEGUE_MAX_*) through `use_caps`, and the API, the form and the OpenAPI schema follow.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

SEED_MAX = 2**32 - 1  # numpy/A1111-compatible, fits every database's BIGINT and torch.Generator
GUIDANCE_MAX = 30.0
SIZE_MIN = 64
SIZE_MULTIPLE = 8  # the VAE works on 8x8 pixel cells
MAX_PROMPT_CHARS = 2000
MAX_TITLE_CHARS = 200
MAX_MODEL_CHARS = 500
#: The largest id, version or offset a request may name: the database's INTEGER column (32-bit on
#: PostgreSQL). Past it a request is a 422 naming the field, never a 500 from the database.
MAX_ID = 2**31 - 1

Scheduler = Literal["dpmsolver", "ddim", "euler", "euler_a", "lcm"]
TextInterpolation = Literal["lerp", "slerp"]
SCHEDULER_LABELS: dict[str, str] = {
    "dpmsolver": "DPM-Solver++ (multistep)",
    "ddim": "DDIM",
    "euler": "Euler",
    "euler_a": "Euler ancestral",
    "lcm": "LCM (LCM models or LCM-LoRA: 2-8 steps, guidance 1-2)",
}
TEXT_INTERPOLATION_LABELS: dict[str, str] = {"lerp": "Linear (lerp)", "slerp": "Spherical (slerp)"}
assert set(SCHEDULER_LABELS) == set(get_args(Scheduler))
assert set(TEXT_INTERPOLATION_LABELS) == set(get_args(TextInterpolation))

#: How the noise latent travels between two seeds (docs/user-guide.md, "Paths and spacing"). With one seed
#: every path gives that seed's noise unchanged.
NoiseInterpolation = Literal["linear", "normalized", "slerp", "translate"]
NOISE_INTERPOLATION_LABELS: dict[str, str] = {
    "linear": "Linear (midpoint std 0.71)",
    "normalized": "Normalized linear",
    "slerp": "Spherical (slerp)",
    "translate": "Translate (slide a window)",
}
#: Attention interpolation (AID; docs/methods-attention.md): how an in-between's attention layers mix the
#: keys and values of its segment's two keyframes, rendered in the same batch. "none": plain attention.
AttentionInterpolation = Literal["none", "inner", "outer", "fused"]
ATTENTION_INTERPOLATION_LABELS: dict[str, str] = {
    name: name.capitalize() for name in get_args(AttentionInterpolation)
}
#: Where the frames sit on the timeline: named curves (core.spacing) or measured from a probe pass.
Spacing = Literal[
    "uniform", "ease_in_out", "ease_in", "ease_out", "sine", "perceptual", "adaptive", "audio", "beta"
]
SPACING_LABELS: dict[str, str] = {
    "uniform": "Uniform",
    "ease_in_out": "Ease in and out",
    "ease_in": "Ease in",
    "ease_out": "Ease out",
    "sine": "Sine in and out",
    "perceptual": "Perceptually even (probe pass)",
    "adaptive": "Adaptive refinement (probe pass)",
    "audio": "Follow the soundtrack (onsets)",
    "beta": "Beta prior, fitted (probe pass)",
}
#: Spacings that need a probe render before the frames can be placed.
PROBED_SPACINGS = ("perceptual", "adaptive", "beta")
InBetween = Literal["full", "shared"]
#: What the frame on a keyframe with an image shows: the image itself, or what the model makes of its inverted
#: noise (the reconstruction; docs/image-endpoints.md).
ImageEndpoints = Literal["image", "reconstruction"]
IMAGE_ENDPOINTS_LABELS: dict[str, str] = {
    "image": "The image itself",
    "reconstruction": "The model's reconstruction of it",
}
IN_BETWEEN_LABELS: dict[str, str] = {
    "full": "Full (every frame from noise)",
    "shared": "Shared trajectory (in-betweens from step k)",
}
assert set(NOISE_INTERPOLATION_LABELS) == set(get_args(NoiseInterpolation))
assert set(ATTENTION_INTERPOLATION_LABELS) == set(get_args(AttentionInterpolation))
assert set(SPACING_LABELS) == set(get_args(Spacing))
assert set(IN_BETWEEN_LABELS) == set(get_args(InBetween))
assert set(IMAGE_ENDPOINTS_LABELS) == set(get_args(ImageEndpoints))


@dataclass(frozen=True)
class Caps:
    """The upper limits a person may ask for. The defaults are the hard limits the engine accepts."""

    frames: int = 600
    size: int = 1024
    steps: int = 150
    batch_size: int = 16


HARD_CAPS = Caps()
_caps = HARD_CAPS


def use_caps(**lower: int) -> Caps:
    """Lower some caps for this process (from settings); a cap can never exceed the hard limit."""
    global _caps
    for name, value in lower.items():
        hard = getattr(HARD_CAPS, name)
        if not 1 <= value <= hard:
            raise ValueError(f"the cap on {name} must be between 1 and {hard} (got {value})")
    _caps = replace(HARD_CAPS, **lower)
    return _caps


def caps() -> Caps:
    return _caps


def whole_number(value: object) -> int | None:
    """`value` as a whole number when it is one written in ASCII digits (at most 30 of them), else None.

    For a form field or a header: Python's `str.isdigit()` is true for "²" and other digits `int()`
    refuses."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 30 or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def format_number(value: float) -> str:
    """12, 7.5, 4294967295: integers in full, other numbers short."""
    return str(int(value)) if isinstance(value, int) or float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class Range:
    """An inclusive numeric range; `high` may follow a cap so a deployment can lower it."""

    low: float
    high_of: Callable[[Caps], float]
    multiple: int = 0
    integer: bool = True

    def high(self, of: Caps | None = None) -> float:
        return self.high_of(of or _caps)

    def message(self, field: str, value: float) -> str:
        low, high, got = format_number(self.low), format_number(self.high()), format_number(value)
        if self.multiple:
            return f"{field} must be a multiple of {self.multiple} between {low} and {high} (got {got})"
        if not self.integer:
            return f"{field} must be a finite number between {low} and {high}"
        return f"{field} must be between {low} and {high} (got {got})"

    def check(self, field: str, value: float) -> None:
        finite = isinstance(value, int | float) and math.isfinite(value)
        if (
            not finite
            or not self.low <= value <= self.high()
            or (self.multiple and int(value) % self.multiple)
        ):
            raise ValueError(self.message(field, value if finite else float("nan")))


#: Every numeric limit, by field name. The form's hints and the OpenAPI schema are drawn from this table.
RANGES: dict[str, Range] = {
    "frames": Range(2, lambda c: c.frames),
    "seed": Range(0, lambda c: SEED_MAX),
    "steps": Range(1, lambda c: c.steps),
    "guidance_scale": Range(0, lambda c: GUIDANCE_MAX, integer=False),
    "width": Range(SIZE_MIN, lambda c: c.size, multiple=SIZE_MULTIPLE),
    "height": Range(SIZE_MIN, lambda c: c.size, multiple=SIZE_MULTIPLE),
    "batch_size": Range(1, lambda c: c.batch_size),
    # Probe frames (perceptual) or most frames added (adaptive); see core.spacing.
    "spacing_budget": Range(2, lambda c: c.frames),
    # Trajectory sharing: in-betweens start at this step (clamped below the render's steps).
    "shared_from_step": Range(1, lambda c: c.steps),
    # Animatics (docs/animatics.md): playback rate, the soundtrack's start and the audio spacing's blend.
    "fps": Range(1, lambda c: 60),
    "audio_offset": Range(0, lambda c: 600, integer=False),
    "smooth": Range(0, lambda c: 1, integer=False),
    # Fewer U-Net evaluations (docs/gpu-and-speed.md): the share of the steps that evaluate the unconditional
    # branch, and DeepCache's interval between full U-Net evaluations.
    "guidance_until": Range(0, lambda c: 1.0, integer=False),
    "deep_cache_interval": Range(1, lambda c: c.steps),
    # DeepCache acts from this share of the steps on: the steps before it all run the full U-Net; 0: all.
    "deep_cache_from": Range(0, lambda c: 1.0, integer=False),
    # Neighbour reuse: the share of the steps after which a shared in-between runs only the shallow path,
    # fed with its two anchors' deep features at the same step (engine/neighbours.py); 1: off.
    "neighbour_reuse_from": Range(0, lambda c: 1.0, integer=False),
    # Attention interpolation acts on this fraction of the steps (the first ones), plain attention after.
    "attention_steps": Range(0, lambda c: 1, integer=False),
}

#: The numeric limits of a keyframe's own settings (a keyframe's seed uses RANGES["seed"]).
KEYFRAME_RANGES: dict[str, Range] = {
    "seed": RANGES["seed"],
    "hold_frames": Range(0, lambda c: c.frames),
    "frames": Range(1, lambda c: c.frames),
    "switch_step": Range(0, lambda c: c.steps),
}


def _range_schema(field: str, table: dict[str, Range]) -> Callable[[dict[str, Any]], None]:
    def extra(schema: dict[str, Any]) -> None:
        limit = table[field]
        schema["minimum"], schema["maximum"] = limit.low, limit.high()
        if limit.multiple:
            schema["multipleOf"] = limit.multiple

    return extra


def ranged(field: str, kind: type, table: dict[str, Range] | None = None) -> Any:
    """The annotated type of a numeric setting: checked against RANGES, its limits in the JSON schema."""
    limits = RANGES if table is None else table

    def check(value: float, info: ValidationInfo) -> float:
        limits[field].check(str(info.field_name), value)
        return value

    return Annotated[kind, AfterValidator(check), Field(json_schema_extra=_range_schema(field, limits))]


def check_prompt(field: str, value: str, *, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise ValueError(f"{field} must not be empty")
    if len(value) > MAX_PROMPT_CHARS:
        raise ValueError(f"{field} must be at most {MAX_PROMPT_CHARS} characters (got {len(value)})")
    return check_text(field, value)


def check_text(field: str, value: str) -> str:
    """Text every database stores as given: no NUL character, no lone UTF-16 surrogate."""
    if "\x00" in value:
        raise ValueError(f"{field} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{field} must be valid Unicode text (it holds a lone surrogate)") from None
    return value


def _stored_text(value: str, info: ValidationInfo) -> str:
    return check_text(str(info.field_name), value)


#: Free text a database keeps as it is given (a note, a label, a name): no NUL, no lone surrogate.
StoredText = Annotated[str, AfterValidator(_stored_text)]


def _prompt(value: str, info: ValidationInfo) -> str:
    return check_prompt(str(info.field_name), value)


def _optional_prompt(value: str, info: ValidationInfo) -> str:
    return check_prompt(str(info.field_name), value, required=False)


def _title(value: str) -> str:
    value = check_text("title", value.strip())
    if len(value) > MAX_TITLE_CHARS:
        raise ValueError(f"title must be at most {MAX_TITLE_CHARS} characters (got {len(value)})")
    return value


def _position(value: float) -> float:
    if not math.isfinite(value) or not 0.0 < value < 1.0:
        raise ValueError(f"position must be strictly between 0 and 1 (got {value:g})")
    return value


Prompt = Annotated[str, AfterValidator(_prompt), Field(max_length=MAX_PROMPT_CHARS + 200)]
OptionalPrompt = Annotated[str, AfterValidator(_optional_prompt), Field(max_length=MAX_PROMPT_CHARS + 200)]
Title = Annotated[str, AfterValidator(_title), Field(max_length=MAX_TITLE_CHARS + 200)]
Position = Annotated[float, AfterValidator(_position), Field(gt=0, lt=1)]
ModelName = Annotated[str, Field(min_length=1, max_length=MAX_MODEL_CHARS)]


def random_seed() -> int:
    return secrets.randbelow(SEED_MAX + 1)


class PixelSettings(BaseModel):
    """Everything besides the prompt blend that decides a frame's pixels (the frame key hashes these)."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName = "segue-mini"
    negative_prompt: OptionalPrompt = ""
    seed: ranged("seed", int) = Field(default_factory=random_seed)  # type: ignore[valid-type]
    steps: ranged("steps", int) = 25  # type: ignore[valid-type]
    guidance_scale: ranged("guidance_scale", float) = 7.5  # type: ignore[valid-type]
    width: ranged("width", int) = 512  # type: ignore[valid-type]
    height: ranged("height", int) = 512  # type: ignore[valid-type]
    scheduler: Scheduler = "dpmsolver"
    text_interpolation: TextInterpolation = "lerp"
    # Off (1.0 and 1) computes exactly what Segue always computed; the frame key hashes them only when on.
    guidance_until: ranged("guidance_until", float) = 1.0  # type: ignore[valid-type]
    deep_cache_interval: ranged("deep_cache_interval", int) = 1  # type: ignore[valid-type]
    # Off (0) with any interval, and hashed only where DeepCache is on (core.timeline._pixel_payload).
    deep_cache_from: ranged("deep_cache_from", float) = 0.0  # type: ignore[valid-type]
    # Acts on shared in-betweens only, and a frame key hashes it only there (core.timeline._digest).
    neighbour_reuse_from: ranged("neighbour_reuse_from", float) = 1.0  # type: ignore[valid-type]
    # The transition's attention interpolation (a keyframe may set its segment's own); not hashed as
    # such: a frame key hashes the mode its frame really uses (core.timeline.frame_key).
    attention_interpolation: AttentionInterpolation = "none"
    attention_steps: ranged("attention_steps", float) = 0.5  # type: ignore[valid-type]
    # Keyframes with an image: hashed only in the keys of frames such a keyframe touches.
    image_endpoints: ImageEndpoints = "image"


class RenderSettings(PixelSettings):
    """Every setting of a transition: the pixel settings plus how many frames and how they are batched."""

    frames: ranged("frames", int) = 24  # type: ignore[valid-type]
    batch_size: ranged("batch_size", int) = 3  # type: ignore[valid-type]
    # Paths and spacing (docs/user-guide.md); a frame's own noise inputs and switch step are in FramePlan.
    noise_interpolation: NoiseInterpolation = "slerp"
    spacing: Spacing = "uniform"
    spacing_budget: ranged("spacing_budget", int) | None = None  # type: ignore[valid-type]
    in_between: InBetween = "full"
    shared_from_step: ranged("shared_from_step", int) | None = None  # type: ignore[valid-type]
    # Time (docs/animatics.md): none of these touch a frame's pixels, so frame keys do not hash them.
    fps: ranged("fps", int) = 12  # type: ignore[valid-type]
    audio_offset: ranged("audio_offset", float) = 0.0  # type: ignore[valid-type]
    smooth: ranged("smooth", float) = 0.0  # type: ignore[valid-type]


SETTING_FIELDS: tuple[str, ...] = tuple(RenderSettings.model_fields)
#: Settings whose "not set" (null) is a value of its own: a PATCH with null (an emptied field) clears them.
NULLABLE_SETTINGS: tuple[str, ...] = ("spacing_budget", "shared_from_step")
PIXEL_FIELDS: tuple[str, ...] = tuple(PixelSettings.model_fields)
#: The U-Net savings and their "off" values: at these, a frame's key is the one it always had.
SAVINGS_OFF: dict[str, Any] = {
    "guidance_until": 1.0,
    "deep_cache_interval": 1,
    "deep_cache_from": 0.0,
    "neighbour_reuse_from": 1.0,
}


def neighbour_reuse_step(pixels: PixelSettings, start_step: int, mixed_steps: int = 0) -> int | None:
    """The first step at which a shared in-between starting at `start_step` reuses its anchors' deep
    features (never during its attention interpolation's mixed steps); None: it never does."""
    if start_step <= 0 or pixels.neighbour_reuse_from >= 1.0:
        return None
    wanted = math.ceil(pixels.neighbour_reuse_from * pixels.steps - 1e-9)
    step = max(start_step, wanted, mixed_steps)
    return step if step < pixels.steps else None


def defaults() -> dict[str, Any]:
    """Each setting's default (the seed has none: a new transition draws one)."""
    return {
        name: (None if info.default_factory else info.default)
        for name, info in RenderSettings.model_fields.items()
    }


#: MoCE's switch step: a number of steps, or "auto" (found by a binary search on the worker).
AUTO_SWITCH: Literal["auto"] = "auto"


def _concept_prompt(value: str, info: ValidationInfo) -> str:
    return check_prompt(f"concepts.{info.field_name}", value)


def _concept_description(value: str | None, info: ValidationInfo) -> str | None:
    if value is None:
        return None
    return check_prompt(f"concepts.{info.field_name}", value, required=False) or None


def _concept_switch(value: Any) -> Any:
    """A whole number of steps within the steps cap, or "auto"; the message names the field."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == AUTO_SWITCH:
            return AUTO_SWITCH
        if (number := whole_number(text)) is not None:
            value = number
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        high = format_number(KEYFRAME_RANGES["switch_step"].high())
        raise ValueError(f'concepts.switch_step must be a whole number between 0 and {high} or "auto"')
    KEYFRAME_RANGES["switch_step"].check("concepts.switch_step", value)
    return int(value)


ConceptPrompt = Annotated[str, AfterValidator(_concept_prompt), Field(max_length=MAX_PROMPT_CHARS + 200)]
ConceptDescription = Annotated[
    Annotated[str, Field(max_length=MAX_PROMPT_CHARS + 200)] | None, AfterValidator(_concept_description)
]
ConceptSwitch = Annotated[
    int | Literal["auto"],
    BeforeValidator(_concept_switch),
    Field(
        json_schema_extra=lambda schema: schema.update(
            description=(
                'steps [0, N) denoise with the first concept alone; "auto": found by a binary search on the '
                "Multi-Concept Disparity (docs/user-guide.md, MoCE)"
            )
        )
    ),
]


class Concepts(BaseModel):
    """MoCE (sequential concept introduction) on a keyframe whose prompt combines concepts the model mixes up.

    `first` is the easily lost concept A: the keyframe's frames denoise their first `switch_step` steps
    with A alone, the rest with the full prompt (in a segment, the early and the full embeddings
    interpolate like the prompts do). `second` (B) and the descriptions feed the search of "auto": the
    Multi-Concept Disparity S(M, A) - S(M, B), S(M, X) = max(CLIPScore(M, X), CLIPScore(M, description)).
    """

    model_config = ConfigDict(extra="forbid")

    first: ConceptPrompt
    first_description: ConceptDescription = None
    second: ConceptPrompt
    second_description: ConceptDescription = None
    switch_step: ConceptSwitch = AUTO_SWITCH

    @property
    def is_auto(self) -> bool:
        return self.switch_step == AUTO_SWITCH


class KeyframeSettings(BaseModel):
    """A keyframe's own behaviour; the segment settings apply to the segment the keyframe starts.

    seed: pins the noise here (noise between two pinned keyframes interpolates; the endpoints default to
    the transition's seed). hold_frames: the keyframe's frame shows n more times. cut: the segment it
    starts does not blend (its frames show this keyframe until the next one). frames: how many frames the
    segment has. noise_interpolation, switch_step, attention_interpolation: the segment's noise path,
    prompt switch step and attention interpolation.
    """

    model_config = ConfigDict(extra="forbid")

    seed: ranged("seed", int, KEYFRAME_RANGES) | None = None  # type: ignore[valid-type]
    hold_frames: ranged("hold_frames", int, KEYFRAME_RANGES) = 0  # type: ignore[valid-type]
    cut: bool = False
    frames: ranged("frames", int, KEYFRAME_RANGES) | None = None  # type: ignore[valid-type]
    noise_interpolation: NoiseInterpolation | None = None
    switch_step: ranged("switch_step", int, KEYFRAME_RANGES) | None = None  # type: ignore[valid-type]
    #: The segment's attention interpolation; null: the transition's.
    attention_interpolation: AttentionInterpolation | None = None
    #: MoCE on this keyframe (not a segment setting: the end keyframe may have it too); null: off.
    concepts: Concepts | None = None


KEYFRAME_FIELDS: tuple[str, ...] = tuple(KeyframeSettings.model_fields)
#: Settings of the segment a keyframe starts: meaningless on the end keyframe.
SEGMENT_FIELDS: tuple[str, ...] = (
    "cut",
    "frames",
    "noise_interpolation",
    "switch_step",
    "attention_interpolation",
)


class KeyframeImage(BaseModel):
    """A keyframe's image (docs/image-endpoints.md): a PNG in the frame store by the SHA-256 of its bytes."""

    model_config = ConfigDict(extra="ignore")

    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    width: Annotated[int, Field(ge=1)]
    height: Annotated[int, Field(ge=1)]


class KeyframeSnapshot(KeyframeSettings):
    """A keyframe as a render stored it; rows written before the keyframe settings existed load as None."""

    model_config = ConfigDict(extra="ignore")

    position: float
    prompt: str
    #: Its image, beside or instead of the prompt (null: none).
    image: KeyframeImage | None = None


class RenderSnapshot(RenderSettings):
    """What a render stores: its settings and keyframes, frozen when it starts, and the model's revision.

    Rows written before the revision existed load with an empty one; unknown keys are ignored.
    """

    model_config = ConfigDict(extra="ignore")

    keyframes: list[KeyframeSnapshot]
    model_revision: str = ""
    #: The transition's soundtrack when the render started ({key, name, media_type, duration, ...}).
    soundtrack: dict[str, Any] | None = None
    #: spacing "audio": the soundtrack's onset energy between each pair of adjacent base frames.
    audio_energy: list[float] | None = None

    def pixels(self) -> PixelSettings:
        return PixelSettings.model_validate(self.model_dump(include=set(PIXEL_FIELDS)))


def field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    """A pydantic error location as the field a person typed in ("frames", "keyframes.0.prompt")."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def error_message(error: dict[str, Any], field: str) -> str:
    """One pydantic error as a sentence naming the field (and, from the validators here, its range)."""
    msg = str(error.get("msg", "invalid value"))
    if msg.startswith("Value error, "):
        return msg.removeprefix("Value error, ")
    if error.get("type") == "missing":
        return f"{field} is required"
    if error.get("type") == "extra_forbidden":
        return f"{field} is not a known field"
    return f"{field}: {msg[0].lower()}{msg[1:]}" if msg else field
