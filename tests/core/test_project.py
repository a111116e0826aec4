"""The project file schema: stable bytes, every setting, refusals that name the field, no server paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.params import KeyframeSnapshot, RenderSettings
from services import projects
from services.exports import ExportOptions


def project_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "segue_project": 1,
        "app_version": "0.1.0",
        "title": "City → forest",
        "model": "segue-tiny",
        "model_revision": "abc123",
        "settings": {"seed": 42, "frames": 6, "steps": 4, "width": 64, "height": 64, "scheduler": "ddim"},
        "keyframes": [
            {"position": 0, "prompt": "a futuristic cityscape"},
            {"position": 0.4, "prompt": "a city garden"},
            {"position": 1, "prompt": "a girl in a magical forest"},
        ],
    }
    data.update(overrides)
    return data


def errors_of(data: Any) -> dict[str, str]:
    from services.errors import validation_errors

    with pytest.raises(ValidationError) as caught:
        projects.load(json.dumps(data))
    return {e["field"]: e["msg"] for e in validation_errors(list(caught.value.errors()))}  # type: ignore[arg-type]


def test_a_project_file_round_trips_to_the_same_bytes() -> None:
    first = projects.dump(projects.load(json.dumps(project_data())))
    again = projects.dump(projects.load(first))
    assert first == again
    parsed = json.loads(first)
    # Every setting is written out, defaults included, so a file says everything that decides the frames.
    assert set(parsed["settings"]) == set(RenderSettings.model_fields) - {"model"}
    assert parsed["settings"]["scheduler"] == "ddim" and parsed["settings"]["guidance_scale"] == 7.5
    assert [k["position"] for k in parsed["keyframes"]] == [0.0, 0.4, 1.0]
    assert list(parsed) == [
        "segue_project",
        "app_version",
        "title",
        "model",
        "model_revision",
        "settings",
        "keyframes",
    ]
    assert first.endswith(b"}\n") and "City → forest".encode() in first  # UTF-8, not \u escapes


def test_keyframes_carry_every_setting_a_render_snapshot_keeps() -> None:
    keyframe = json.loads(projects.dump(projects.load(json.dumps(project_data()))))["keyframes"][1]
    # `image` only where a keyframe has one: files without images keep the bytes they always had.
    assert set(keyframe) == set(KeyframeSnapshot.model_fields) - {"image"}


def test_keyframes_are_sorted_and_the_snapshot_is_what_a_render_uses() -> None:
    data = project_data()
    data["keyframes"] = list(reversed(data["keyframes"]))
    project = projects.load(json.dumps(data))
    assert [k.position for k in project.keyframes] == [0.0, 0.4, 1.0]
    snapshot = project.snapshot(model="segue-tiny", model_revision="r1")
    assert snapshot.model == "segue-tiny" and snapshot.model_revision == "r1"
    assert snapshot.seed == 42 and snapshot.frames == 6 and snapshot.scheduler == "ddim"
    assert [k.prompt for k in snapshot.keyframes][1] == "a city garden"


@pytest.mark.parametrize(
    ("mutate", "field", "needle"),
    [
        (lambda d: d.update(extra=1), "extra", "not a known field"),
        (lambda d: d["settings"].update(sampler="plms"), "settings.sampler", "not a known field"),
        (lambda d: d["keyframes"][1].update(weight=2), "keyframes.1.weight", "not a known field"),
        (lambda d: d.update(segue_project=2), "segue_project", "version 1"),
        (lambda d: d["settings"].pop("seed"), "settings.seed", "required"),
        (lambda d: d["settings"].update(steps=0), "settings.steps", "between 1 and 150"),
        (lambda d: d["settings"].update(width=100), "settings.width", "multiple of 8"),
        (lambda d: d["keyframes"][1].update(position=1.5), "keyframes.1.position", "between 0 and 1"),
        (lambda d: d["keyframes"][1].update(prompt="  "), "keyframes.1.prompt", "must not be empty"),
        (lambda d: d["keyframes"].pop(0), "keyframes", "position 0"),
        (lambda d: d["keyframes"].__setitem__(slice(1, 2), []) or d["keyframes"].pop(), "keyframes", "two"),
        (lambda d: d["keyframes"][1].update(position=1.0), "keyframes", "share position"),
        (lambda d: d.pop("model"), "model", "required"),
    ],
)
def test_bad_project_files_are_refused_naming_the_field(mutate: Any, field: str, needle: str) -> None:
    data = project_data()
    mutate(data)
    errors = errors_of(data)
    assert field in errors, errors
    assert needle in errors[field]


def test_oversized_input_is_refused_before_parsing() -> None:
    too_many = project_data()
    too_many["keyframes"] = [{"position": i / 200, "prompt": f"p{i}"} for i in range(201)]
    assert "at most 200 keyframes (got 201)" in errors_of(too_many)["keyframes"]

    padded = json.dumps(project_data(title="x")) + " " * projects.MAX_PROJECT_BYTES
    with pytest.raises(projects.ProjectTooLarge, match="at most 40000 kB"):
        projects.load(padded)
    with pytest.raises(ValueError, match="not a JSON document"):
        projects.load(b"\xff{not json")


def test_server_paths_never_leave_the_server(tmp_path: Path) -> None:
    local = tmp_path / "weights" / "sd15"
    local.mkdir(parents=True)
    assert projects.public_model_name(str(local)) == "sd15"
    assert projects.public_model_name(str(local) + "/") == "sd15"
    assert projects.public_model_name("runwayml/stable-diffusion-v1-5") == "runwayml/stable-diffusion-v1-5"
    assert projects.public_model_name("segue-mini") == "segue-mini"
    # On import the name finds the allowed model it stands for; unknown names stay as they are.
    allowed = ["segue-tiny", str(local)]
    assert projects.resolve_model_name("sd15", allowed) == str(local)
    assert projects.resolve_model_name("segue-tiny", allowed) == "segue-tiny"
    assert projects.resolve_model_name("other", allowed) == "other"


def test_export_options_share_a_cache_key_when_the_file_would_be_the_same() -> None:
    mp4 = ExportOptions(format="mp4")
    assert mp4.cache_key(1) == ExportOptions(format="mp4", fps=12, hold_seconds=3.0).cache_key(1)
    assert mp4.cache_key(1) != ExportOptions(format="mp4", fps=24).cache_key(1)
    assert mp4.cache_key(1) != ExportOptions(format="mp4", hold_keyframes=True).cache_key(1)
    assert mp4.cache_key(1) != mp4.cache_key(2)
    # Timing means nothing for a zip of frames or a contact sheet.
    zip_key = ExportOptions(format="zip").cache_key(1)
    assert zip_key == ExportOptions(format="zip", fps=30, loop=True).cache_key(1)
    with pytest.raises(ValidationError, match="fps must be between 1 and 60"):
        ExportOptions(format="gif", fps=61)
