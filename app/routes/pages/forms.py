"""What the pages' forms send, read into what the API schemas take."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError

from app.errors import form_errors

Errors = dict[str, str]


def errors_of(exc: ValidationError) -> Errors:
    return form_errors(list(exc.errors()))  # type: ignore[arg-type]


async def form_values(request: Request, fields: type[BaseModel]) -> dict[str, Any]:
    """Form fields that the model knows, with empty optional inputs left out (they mean 'default')."""
    form = await request.form()
    known = fields.model_fields
    data: dict[str, Any] = {}
    for name, value in form.items():
        if name not in known or not isinstance(value, str):
            continue
        # An emptied prompt is sent: a keyframe with an image may have none (docs/image-endpoints.md).
        keep_empty = ("negative_prompt", "title", "prompt")
        if value.strip() == "" and not known[name].is_required() and name not in keep_empty:
            continue
        data[name] = value
    return data


def cleared(form: Any, names: Iterable[str]) -> dict[str, None]:
    """The settings among `names` the form sends emptied: they go back to "not set" (None)."""
    return {name: None for name in names if str(form.get(name, "x")).strip() == ""}


#: The field a keyframe form's typed time form is read as: a position typed as a time, a hold in seconds.
TIME_FORMS = {"position": "time", "hold_frames": "hold_seconds"}
#: The form field a time form's value and error belong to.
TYPED_AS = {read_as: field for field, read_as in TIME_FORMS.items()}


def time_forms(values: dict[str, Any]) -> dict[str, Any]:
    """A position typed as a time ("0:02.5", "2.5s") or a hold in seconds ("1.5s"): the time forms."""
    position, hold = str(values.get("position", "")).strip(), str(values.get("hold_frames", "")).strip()
    if position and (":" in position or position.endswith("s")):
        values[TIME_FORMS["position"]] = values.pop("position")
    if hold and hold.endswith("s"):
        values[TIME_FORMS["hold_frames"]] = values.pop("hold_frames").strip().removesuffix("s")
    return values


#: The fields a keyframe's row or the insert form shows an error under (pages/transition.html,
#: partials/keyframe_paths.html and partials/keyframe_concepts.html); any other goes on the row's own line.
KEYFRAME_ERROR_FIELDS = frozenset(
    {"position", "prompt", "keyframe", "seed", "hold_frames", "cut", "frames", "noise_interpolation"}
    | {"switch_step", "attention_interpolation", "concepts"}
)


def as_typed(values: dict[str, Any], errors: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The values and errors of a keyframe form under the fields a person typed into: a time's error under
    Position, a hold in seconds' under Hold, with what was typed shown again; an error of a field the form
    does not show (its hidden version, a malformed concepts value) on the row's own line."""
    values = dict(values)
    if "time" in values:
        values["position"] = values.pop("time")
    if "hold_seconds" in values:
        values["hold_frames"] = f"{values.pop('hold_seconds')}s"  # typed with its "s"
    shown: dict[str, str] = {}
    for field, message in errors.items():
        name = TYPED_AS.get(field, field)
        if name.split(".", 1)[0] not in KEYFRAME_ERROR_FIELDS:
            name, message = "keyframe", f"{field}: {message}"
        shown[name] = f"{shown[name]}; {message}" if name in shown else message
    return values, shown


def concepts_form(form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The row's "Sequential concepts" fields as the keyframe's `concepts` (keyframe_concepts.html).

    Returns ({"concepts": value} when the form has the section, else {}; the fields as typed, to show them
    again). Unticked: null (off). Ticked: the concepts, empty descriptions left out, an empty switch step
    meaning "auto".
    """
    if "concepts.on" not in form:
        return {}, {}
    typed = {n: str(form.get(n, "")) for n in form if n.startswith("concepts.") and n != "concepts.on"}
    on = "true" in form.getlist("concepts.on")
    typed["concepts.on"] = "true" if on else "false"
    if not on:
        return {"concepts": None}, typed
    value: dict[str, Any] = {}
    for name in ("first", "first_description", "second", "second_description", "switch_step"):
        text = typed.get(f"concepts.{name}", "").strip()
        if text or name in ("first", "second"):
            value[name] = text
    value.setdefault("switch_step", "auto")
    return {"concepts": value}, typed
