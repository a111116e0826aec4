"""One settings model: the form, the OpenAPI schema and the engine agree on every limit and default."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from core import params


@pytest.fixture
def client(database: str, sent_tasks, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from app.main import create_app
    from tests.support.isolation import without_reaper

    without_reaper(monkeypatch)
    with TestClient(create_app()) as test_client:
        yield test_client


def _form_limits(html: str) -> dict[str, tuple[str, str]]:
    """name -> (min, max) as the form shows them (title="min–max" on each numeric input)."""
    return dict(
        (m[0], (m[1], m[2]))
        for m in re.findall(r'name="(\w+)" type="text"[^>]*title="([\d.]+)–([\d.]+)"', html)
    )


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_form_openapi_and_engine_agree_on_each_limit(client: TestClient) -> None:
    from engine.pipeline import FrameRequest, check_inputs

    schema = client.get("/openapi.json").json()["components"]["schemas"]["TransitionCreate"]["properties"]
    form = _form_limits(client.get("/transitions/new").text)
    base = params.PixelSettings(model="segue-tiny", seed=1, width=64, height=64)
    frame = [FrameRequest("a", "b", 0.5)]
    for name, limit in params.RANGES.items():
        low, high = limit.low, limit.high()
        field = schema[name]
        bounds = field if "minimum" in field else field["anyOf"][0]
        assert (bounds["minimum"], bounds["maximum"]) == (low, high), name
        assert tuple(float(x) for x in form[name]) == (low, high), name
        if name in params.PIXEL_FIELDS:
            check_inputs(base.model_copy(update={name: high}), frame)  # the engine takes the top...
            step = limit.multiple or (1 if limit.integer else 0.5)
            with pytest.raises(ValueError, match=name):  # ...and refuses just past it
                check_inputs(base.model_copy(update={name: high + step}), frame)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_form_prefills_the_defaults_of_core_params(client: TestClient) -> None:
    html = client.get("/transitions/new").text
    for name in ("frames", "steps", "guidance_scale", "batch_size"):
        default = params.RenderSettings.model_fields[name].default
        assert re.search(rf'name="{name}" type="text"[^>]*value="{default}"', html), name


def test_a_lower_cap_reaches_validation_and_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        params.use_caps(frames=100)
        assert params.RANGES["frames"].high() == 100
        with pytest.raises(ValueError, match="frames must be between 2 and 100 \\(got 101\\)"):
            params.RenderSettings(frames=101)
        with pytest.raises(ValueError, match="between 1 and 600"):
            params.use_caps(frames=601)
    finally:
        params.use_caps()


def test_one_seed_range_everywhere() -> None:
    assert params.RANGES["seed"].high() == params.SEED_MAX == 2**32 - 1
    params.RenderSettings(seed=params.SEED_MAX)
    with pytest.raises(ValueError, match="seed must be between 0 and 4294967295"):
        params.RenderSettings(seed=params.SEED_MAX + 1)


def test_a_render_stored_in_the_old_shape_still_loads() -> None:
    # As start_render wrote it before core.params existed: no model_revision, plain dicts.
    old = {
        "negative_prompt": "",
        "frames": 8,
        "seed": 7,
        "steps": 25,
        "guidance_scale": 7.5,
        "width": 64,
        "height": 64,
        "scheduler": "dpmsolver",
        "text_interpolation": "lerp",
        "batch_size": 3,
        "model": "segue-mini",
        "keyframes": [{"position": 0.0, "prompt": "a city"}, {"position": 1.0, "prompt": "a forest"}],
    }
    snapshot = params.RenderSnapshot.model_validate(old)
    assert snapshot.model_revision == "" and snapshot.keyframes[1].prompt == "a forest"
    # Settings added since (the U-Net savings, attention interpolation, image endpoints) load as their
    # "off" defaults, which change no frame key: the frames of the old render, unchanged.
    added = {"attention_interpolation": "none", "attention_steps": 0.5, "image_endpoints": "image"}
    added |= params.SAVINGS_OFF
    assert snapshot.pixels().model_dump() == {k: old.get(k, added.get(k)) for k in params.PIXEL_FIELDS}
