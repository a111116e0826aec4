"""Project files: a transition's every parameter as versioned JSON, and importing one as a new transition.

A project file holds what decides the frames (model and weight revision, settings, keyframes) and a title,
never a server path or a database id. Exporting, importing and exporting again gives the same bytes;
rendering an imported project with the same model gives the same frame keys, so stored frames are reused.
`segue render project.json` (worker/headless.py) reads the same schema.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from sqlalchemy.orm import Session, object_session

from core.params import (
    KeyframeImage,
    KeyframeSnapshot,
    ModelName,
    OptionalPrompt,
    RenderSettings,
    RenderSnapshot,
    StoredText,
    Title,
)
from core.registry import BUILTIN_MODELS, model_revision
from core.timeline import TimelineKeyframe, check_keys
from core.uploads import UploadRefused
from infra.config import get_settings
from infra.storage import get_store
from infra.tables import Transition
from services import history, keyframe_images
from services import transitions as transition_services
from services.errors import FieldError
from services.exports import ascii_name
from services.notes import notes_json, replace_notes
from services.schemas import KeyframeCreate, KeyframeUpdate, PromptWarning, TransitionCreate

PROJECT_VERSION: Literal[1] = 1
#: The largest project file accepted (bytes; room for keyframe images, embedded in base64) and the most
#: keyframes in one.
MAX_PROJECT_BYTES = 40_000_000
MAX_KEYFRAMES = 200
MEDIA_TYPE = "application/json"
SUFFIX = ".segue.json"


def app_version() -> str:
    try:
        return metadata.version("segue")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout without install
        return "0.0.0"


def _position(value: float) -> float:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"position must be between 0 and 1 (got {value:g})")
    return value


class _KeyframeBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: Annotated[float, Field(description="0 for the start, 1 for the end, inner ones in between")]
    #: May be empty beside an image (the worker captions the picture, docs/image-endpoints.md).
    prompt: OptionalPrompt

    @model_validator(mode="after")
    def _prompt_or_image(self) -> Any:
        if not self.prompt and getattr(self, "image", None) is None:
            message = "prompt must not be empty (a keyframe needs a prompt, an image, or both)"
            detail = InitErrorDetails(
                type=PydanticCustomError("value_error", message), loc=("prompt",), input=self.prompt
            )
            raise ValidationError.from_exception_data("ProjectKeyframe", [detail])
        return self

    @field_validator("position")
    @classmethod
    def _in_range(cls, value: float) -> float:
        return _position(value)


def _keyframe_fields() -> dict[str, Any]:
    """A keyframe's own settings (seed, hold, cut, segment settings): those a render snapshot keeps."""
    return {
        name: (
            info.rebuild_annotation(),
            Field(info.default, json_schema_extra=info.json_schema_extra, description=info.description),
        )
        for name, info in KeyframeSnapshot.model_fields.items()
        if name not in _KeyframeBase.model_fields
    }


KEYFRAME_SETTINGS: tuple[str, ...] = tuple(_keyframe_fields())


if TYPE_CHECKING:

    class ProjectKeyframe(_KeyframeBase):
        image: KeyframeImage | None

        def settings(self) -> dict[str, Any]: ...

else:

    def _settings(self: BaseModel) -> dict[str, Any]:
        """The keyframe's own settings (not position and prompt)."""
        return self.model_dump(include=set(KEYFRAME_SETTINGS))

    ProjectKeyframe = create_model(
        "ProjectKeyframe",
        __base__=_KeyframeBase,
        __doc__="A keyframe: position, prompt and its own settings (as core.params.KeyframeSnapshot).",
        **_keyframe_fields(),
    )
    ProjectKeyframe.settings = _settings


def _settings_fields() -> dict[str, Any]:
    """RenderSettings' fields, limits and defaults, minus the model (named at the top of the file).

    The seed has no default here: a project without one would not render the same twice.
    """
    fields: dict[str, Any] = {}
    for name, info in RenderSettings.model_fields.items():
        if name == "model":
            continue
        default = ... if name == "seed" else info.default
        fields[name] = (
            info.rebuild_annotation(),
            Field(default, json_schema_extra=info.json_schema_extra, description=info.description),
        )
    return fields


if TYPE_CHECKING:

    class ProjectSettings(RenderSettings): ...

else:
    ProjectSettings = create_model(
        "ProjectSettings",
        __config__=ConfigDict(extra="forbid"),
        __doc__="Every render setting of core.params.RenderSettings except the model.",
        **_settings_fields(),
    )


class ProjectAudio(BaseModel):
    """The soundtrack a project is timed to (docs/animatics.md): named by the SHA-256 of its bytes, which
    stay in the frame store (or beside the project file, under `name`, for `segue render`)."""

    model_config = ConfigDict(extra="ignore")

    key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}\.[a-z0-9]{2,5}$")]
    name: Annotated[StoredText, Field(max_length=200)] = "soundtrack"
    media_type: Annotated[StoredText, Field(max_length=50)] = "audio/wav"
    duration: Annotated[float, Field(ge=0, le=700)]
    sample_rate: Annotated[int, Field(ge=1, le=1_000_000)]
    channels: Annotated[int, Field(ge=1, le=64)] = 1
    size: Annotated[int, Field(ge=0)] = 0
    beats: Annotated[list[float], Field(max_length=20_000)] = []
    tempo: float = 0.0


class ProjectReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: Annotated[StoredText, Field(min_length=1, max_length=2000)]
    author: Annotated[StoredText, Field(max_length=80)] = ""


class ProjectNote(BaseModel):
    """A review note (docs/notes.md) as the project file carries it: pinned to t, without ids or links."""

    model_config = ConfigDict(extra="ignore")

    t: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
    t_end: Annotated[float | None, Field(ge=0, le=1, allow_inf_nan=False)] = None
    text: Annotated[StoredText, Field(min_length=1, max_length=2000)]
    author: Annotated[StoredText, Field(max_length=80)] = ""
    status: Literal["open", "resolved"] = "open"
    replies: Annotated[list[ProjectReply], Field(max_length=200)] = []

    @field_validator("t_end")
    @classmethod
    def _after_t(cls, value: float | None, info: Any) -> float | None:
        t = info.data.get("t")
        if value is not None and t is not None and value < t:
            raise ValueError(f"t_end must be at least t ({t:g}); got {value:g}")
        return value


class Project(BaseModel):
    """Version 1 of the project file. Unknown fields are refused, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")

    segue_project: Literal[1] = Field(description="the version of this schema")
    app_version: Annotated[StoredText, Field(max_length=50)] = ""
    title: Title = ""
    model: ModelName = Field(description="a built-in name, a hub id, or a local model directory's name")
    model_revision: Annotated[StoredText, Field(max_length=100)] = Field(
        "", description="the weights the frames were made with; informative, frames depend on it"
    )
    settings: ProjectSettings
    keyframes: list[ProjectKeyframe] = Field(
        description=f"2 to {MAX_KEYFRAMES}, the first at 0, the last at 1"
    )
    audio: ProjectAudio | None = Field(None, description="the soundtrack, when the transition has one")
    notes: Annotated[list[ProjectNote], Field(max_length=1000)] = Field(
        [], description="review notes (docs/notes.md); they do not change a frame"
    )
    images: Annotated[
        dict[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")], str], Field(max_length=MAX_KEYFRAMES)
    ] = Field(
        {},
        description="the keyframes' images: PNG bytes in base64 by their SHA-256 (docs/image-endpoints.md)",
    )

    @field_validator("segue_project", mode="before")
    @classmethod
    def _known_version(cls, value: Any) -> Any:
        if value != PROJECT_VERSION or isinstance(value, bool):
            raise ValueError(
                f"segue_project must be {PROJECT_VERSION}: this Segue reads project files of version "
                f"{PROJECT_VERSION} (got {value!r})"
            )
        return value

    @field_validator("images")
    @classmethod
    def _images_match(cls, value: dict[str, str]) -> dict[str, str]:
        for sha, text in value.items():
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"images.{sha[:12]}…: not base64") from None
            if hashlib.sha256(data).hexdigest() != sha:
                raise ValueError(f"images.{sha[:12]}…: the bytes do not have this SHA-256 (a damaged file?)")
        return value

    @field_validator("keyframes", mode="before")
    @classmethod
    def _not_too_many(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > MAX_KEYFRAMES:
            raise ValueError(f"a project holds at most {MAX_KEYFRAMES} keyframes (got {len(value)})")
        return value

    @field_validator("keyframes")
    @classmethod
    def _a_timeline(cls, value: list[ProjectKeyframe]) -> list[ProjectKeyframe]:
        try:
            check_keys([TimelineKeyframe(k.position, k.prompt) for k in value])
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return sorted(value, key=lambda k: k.position)

    def snapshot(self, model: str | None = None, model_revision: str | None = None) -> RenderSnapshot:
        """What a render of this project uses (the model as named in the file unless given)."""
        return RenderSnapshot.model_validate(
            {
                **self.render_settings(model).model_dump(),
                "keyframes": [k.model_dump() for k in self.keyframes],
                "model_revision": self.model_revision if model_revision is None else model_revision,
            }
        )

    def render_settings(self, model: str | None = None) -> RenderSettings:
        """The settings to render with (the model as named in the file unless given)."""
        return RenderSettings.model_validate({**self.settings.model_dump(), "model": model or self.model})


class ProjectTooLarge(ValueError):
    pass


def dump(project: Project) -> bytes:
    """The file's bytes: the same project always gives the same bytes (field order, 2-space indent)."""
    values = project.model_dump(mode="json")
    if values.get("audio") is None:  # files without a soundtrack keep the bytes they always had
        values.pop("audio", None)
    if not values.get("notes"):  # nor do files without notes
        values.pop("notes", None)
    if not values.get("images"):  # nor files without keyframe images
        values.pop("images", None)
    for keyframe in values["keyframes"]:
        if keyframe.get("image") is None:
            keyframe.pop("image", None)
    return (json.dumps(values, indent=2, ensure_ascii=False) + "\n").encode()


def load(data: bytes | str) -> Project:
    """Parse and validate a project file; ValueError (ProjectTooLarge, ValidationError) when it is not one."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_PROJECT_BYTES:
        raise ProjectTooLarge(
            f"a project file is at most {MAX_PROJECT_BYTES // 1000} kB (got {len(raw) // 1000} kB)"
        )
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a JSON document: {exc}") from None
    except RecursionError:
        raise ValueError("not a JSON document: it is nested too deeply") from None
    except ValueError:  # Python's limit on the digits of one integer (4300)
        raise ValueError("not a JSON document: a number in it has too many digits") from None
    return Project.model_validate(parsed)


# ---------------------------------------------------------------- model names without server paths


def _is_local_directory(model: str) -> bool:
    if model in BUILTIN_MODELS:
        return False
    path = Path(model).expanduser()
    return path.is_absolute() or model.startswith((".", "~")) or path.is_dir()


def public_model_name(model: str) -> str:
    """A model as a project file names it: a local directory by its last part, never its server path."""
    return Path(model.rstrip("/")).name if _is_local_directory(model) else model


def resolve_model_name(name: str, allowed: list[str]) -> str:
    """The model a project names, among the ones allowed here (a local directory matched by its name)."""
    if name in allowed:
        return name
    for model in allowed:
        if _is_local_directory(model) and public_model_name(model) == name:
            return model
    return name  # not available: TransitionCreate says so and lists the choices


def current_revision(model: str) -> str:
    return model_revision(model, get_settings().models_folder)


# ---------------------------------------------------------------- export and import


def _keyframe(keyframe: Any) -> ProjectKeyframe:
    """A keyframe row or snapshot as a project keyframe; settings it does not have keep their defaults."""
    values = {"position": keyframe.position, "prompt": keyframe.prompt}
    for name in KEYFRAME_SETTINGS:
        value = getattr(keyframe, name, None)
        if value is not None:
            values[name] = value
    return ProjectKeyframe.model_validate(values)


def _project(
    title: str,
    model: str,
    revision: str,
    values: dict[str, Any],
    keys: list[Any],
    audio: dict[str, Any] | None = None,
) -> Project:
    return Project(
        audio=ProjectAudio.model_validate(audio) if audio else None,
        segue_project=PROJECT_VERSION,
        app_version=app_version(),
        title=title,
        model=public_model_name(model),
        model_revision=revision,
        settings=ProjectSettings.model_validate(
            {name: values[name] for name in ProjectSettings.model_fields}
        ),
        keyframes=[_keyframe(k) for k in keys],
        notes=[],
        images=_images(keys),
    )


def _images(keys: list[Any]) -> dict[str, str]:
    """The keyframes' images, embedded: the PNG bytes (base64) by SHA-256."""
    out: dict[str, str] = {}
    for key in keys:
        image = getattr(key, "image", None)
        if image:
            record = image if isinstance(image, dict) else image.model_dump()
            out[record["sha256"]] = base64.b64encode(keyframe_images.read(record)).decode()
    return dict(sorted(out.items()))


def project_of(transition: Transition) -> Project:
    """The transition as it is now, with the revision of its model's weights here, and its review notes."""
    values = {name: getattr(transition, name) for name in RenderSettings.model_fields}
    project = _project(
        transition.title,
        transition.model,
        current_revision(transition.model),
        values,
        transition.keyframes,
        transition.audio,
    )
    db = object_session(transition)
    if db is not None:
        project.notes = [ProjectNote.model_validate(n) for n in notes_json(db, transition.id)]
    return project


def project_of_render(title: str, snapshot: RenderSnapshot) -> Project:
    """Exactly what a render used: its frozen settings, keyframes and weight revision."""
    return _project(
        title,
        snapshot.model,
        snapshot.model_revision,
        snapshot.model_dump(),
        snapshot.keyframes,
        snapshot.soundtrack,
    )


def project_file_name(title: str) -> str:
    return f"{ascii_name(title) or 'segue'}{SUFFIX}"


class ProjectRefused(ValueError):
    """An import refused after parsing: the fields and messages, like a 422 body."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e.get("msg")) for e in errors))
        self.errors = errors


def _settings_loc(loc: tuple[Any, ...], n_keyframes: int) -> tuple[Any, ...]:
    """Where a TransitionCreate error sits in the project file."""
    head = loc[0] if loc else ""
    if head == "start_prompt":
        return ("keyframes", 0, "prompt", *loc[1:])
    if head == "end_prompt":
        return ("keyframes", n_keyframes - 1, "prompt", *loc[1:])
    if head in ("model", "title"):
        return loc
    return ("settings", *loc)


#: The prompt a start or end keyframe with only an image has between creation and its patch on import.
IMAGE_ONLY = "(image)"


def _non_default(keyframe: ProjectKeyframe) -> dict[str, Any]:
    fields = ProjectKeyframe.model_fields
    return {
        name: value
        for name, value in keyframe.settings().items()
        if value != fields[name].default and name != "image"  # the image comes with its bytes: _image_of
    }


def _image_of(project: Project, index: int) -> keyframe_images.ImageChange | None:
    """A keyframe's image with its bytes from the file, checked like an upload; None: it has none."""
    image = project.keyframes[index].image
    if image is None:
        return None
    text = project.images.get(image.sha256)
    if text is None:
        raise FieldError("image", f"the file has no bytes for image {image.sha256[:12]}… (in `images`)")
    change = keyframe_images.accept(base64.b64decode(text), field="image")
    assert change.record is not None
    # The size is the one measured from the bytes, whatever the file says (it could say 10^12 x 10^12).
    return keyframe_images.ImageChange(record={**image.model_dump(), **change.record}, data=change.data)


def import_project(db: Session, project: Project) -> tuple[Transition, list[PromptWarning]]:
    """A new transition with the project's timeline and settings; warnings when the weights differ.

    Everything is checked against this deployment (its models and caps) before anything is written; then
    the transition is created and its keyframes added through the transition services, so the history
    records them like any edit. If anything still fails, the new transition is removed again.
    """
    settings = get_settings()
    keyframes = project.keyframes
    last = len(keyframes) - 1
    errors: list[dict[str, Any]] = []

    def refused(exc: ValidationError, where: Any) -> None:
        for error in exc.errors():
            errors.append({**error, "loc": where(tuple(error.get("loc", ())))})

    try:
        data = TransitionCreate(
            title=project.title,
            # An end with an image may have no prompt: created with a stand-in, emptied by its patch below.
            start_prompt=keyframes[0].prompt or IMAGE_ONLY,
            end_prompt=keyframes[-1].prompt or IMAGE_ONLY,
            model=resolve_model_name(project.model, settings.models),
            **project.settings.model_dump(),
        )
    except ValidationError as exc:
        refused(exc, lambda loc: _settings_loc(loc, len(keyframes)))
    inner: list[tuple[int, KeyframeCreate]] = []
    ends: list[tuple[int, KeyframeUpdate]] = []
    images: dict[int, keyframe_images.ImageChange] = {}
    for i, keyframe in enumerate(keyframes):
        try:
            own = _non_default(keyframe)
            image = _image_of(project, i)
            if image is not None:
                images[i] = image
            if 0 < i < last:
                inner.append((i, KeyframeCreate(position=keyframe.position, prompt=keyframe.prompt, **own)))
            elif own or image is not None:
                emptied: dict[str, Any] = {} if keyframe.prompt else {"prompt": ""}  # only a picture
                ends.append((i, KeyframeUpdate(**own, **emptied)))
        except ValidationError as exc:
            refused(exc, lambda loc, i=i: ("keyframes", i, *loc))
        except (FieldError, UploadRefused) as exc:
            errors.append({"loc": ("keyframes", i, "image"), "msg": exc.message, "type": "value_error"})
    if errors:
        raise ProjectRefused(errors)

    transition = transition_services.create_transition(db, data)
    at = 0  # the keyframe being added, for an error's location
    try:
        for index, create in inner:
            at = index
            transition_services.add_keyframe(db, transition, create, image=images.get(index))
        for index, patch in ends:
            at = index
            row = transition_services.endpoint(transition, start=index == 0)
            transition_services.update_keyframe(db, row, patch, image=images.get(index))
    except BaseException as exc:
        db.rollback()
        transition_services.delete_transition(db, transition_services.get_transition(db, transition.id))
        if isinstance(exc, FieldError):
            error = {"loc": ("keyframes", at, exc.field), "msg": f"Value error, {exc.message}"}
            raise ProjectRefused([{**error, "type": "value_error"}]) from None
        raise
    db.refresh(transition)
    if project.notes:
        replace_notes(db, transition, [n.model_dump() for n in project.notes])
        db.commit()

    warnings = []
    if project.audio is not None:
        if get_store().has_audio(project.audio.key):
            record = project.audio.model_dump()

            def attach() -> history.Outcome:
                transition.audio = record
                return history.Outcome(summary=f"soundtrack “{record['name']}” from the project file")

            history.edit(db, transition, "audio", attach)
        else:
            warnings.append(
                PromptWarning(
                    field="audio",
                    message=f"the soundtrack “{project.audio.name}” is not on this server: upload it again",
                )
            )
    here = current_revision(transition.model)
    if project.model_revision and here and here != project.model_revision:
        warnings.append(
            PromptWarning(
                field="model_revision",
                message=(
                    f"this project was made with revision {project.model_revision} of {project.model}; "
                    f"here its weights are revision {here}, so frames will differ from the original's"
                ),
            )
        )
    return transition, warnings


__all__ = [
    "MAX_KEYFRAMES",
    "MAX_PROJECT_BYTES",
    "ProjectRefused",
    "Project",
    "ProjectKeyframe",
    "ProjectSettings",
    "ProjectTooLarge",
    "dump",
    "import_project",
    "load",
    "project_of",
    "project_of_render",
]
