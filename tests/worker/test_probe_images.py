"""Probe passes (perceptual, adaptive, Beta spacing) measure the frames of image segments as they will be
rendered: through the image path (worker/keyframe_images.probe_renderer), so the probe's frame on a picture
keyframe is the picture itself, not a render of the keyframe's prompt (docs/image-endpoints.md)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.support.isolation import configure

BLUE = (30, 90, 220)


def _project(spacing: str) -> tuple[Any, bytes]:
    from services import projects

    out = io.BytesIO()
    Image.new("RGB", (64, 64), BLUE).save(out, format="PNG")
    data = out.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    document = {
        "segue_project": 1,
        "title": "to a picture",
        "model": "segue-tiny",
        "settings": {"seed": 3, "frames": 5, "steps": 3, "width": 64, "height": 64, "spacing": spacing},
        "keyframes": [
            {"position": 0, "prompt": "a futuristic cityscape"},
            {"position": 1, "prompt": "", "image": {"sha256": sha, "width": 64, "height": 64}},
        ],
        "images": {sha: base64.b64encode(data).decode()},
    }
    return projects.load(json.dumps(document)), data


@pytest.mark.parametrize("spacing", ["perceptual", "beta"])
def test_the_probe_pass_renders_image_segments_through_the_image_path(
    spacing: str, tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.registry import model_revision
    from engine.pipeline import get_engine
    from engine.probe import pixel_feature, place
    from infra.storage import get_store
    from worker.keyframe_images import probe_renderer

    configure(monkeypatch, tmp_path / "data", models_dir=str(models_dir))
    project, data = _project(spacing)
    sha = next(iter(project.images))
    get_store().write(sha, data)
    snapshot = project.snapshot("segue-tiny", model_revision("segue-tiny", models_dir))
    engine = get_engine("segue-tiny", models_dir=models_dir, device="cpu")

    def probed(render_plans: Any) -> list[Any]:
        seen: list[Any] = []

        def feature(image: Any) -> Any:
            seen.append(np.asarray(image.convert("RGB"), dtype=np.float64))
            return pixel_feature(image)

        placement = place(engine, snapshot, feature=feature, render_plans=render_plans)
        assert placement.probe_ts[-1] == 1.0 and len(seen) == len(placement.probe_ts)
        return seen

    through_images = probed(probe_renderer(engine, snapshot))
    assert np.abs(through_images[-1] - np.array(BLUE)).mean() < 2.0  # the picture keyframe's own frame
    as_prompts = probed(None)  # what the probe measured before: the keyframe rendered from its prompt ("")
    assert np.abs(as_prompts[-1] - np.array(BLUE)).mean() > 20.0
    # The prompt keyframe's frame is the same picture (rendered in a batch of another shape: float noise,
    # which may round a pixel to the next 8-bit level on one CPU and not on another).
    gap = np.abs(through_images[0] - as_prompts[0])
    assert gap.max() <= 1.0 and gap.mean() < 0.01
    assert (
        probe_renderer(
            engine,
            snapshot.model_copy(
                update={
                    "keyframes": [
                        k.model_copy(update={"image": None, "prompt": "a forest"}) for k in snapshot.keyframes
                    ]
                }
            ),
        )
        is None
    )  # no keyframe image: the plain render, as before


def test_a_studio_render_with_perceptual_spacing_ends_on_the_picture(stack_factory: Any) -> None:
    """The worker's planning job runs the probe through the image path and the render completes."""
    from tests.support.pictures import create, end_of, rendered, upload

    stack = stack_factory(mode="embedded", database="sqlite")
    client = stack.client  # type: ignore[attr-defined]
    transition = create(client, width=64, height=64, batch_size=5, spacing="perceptual")
    out = io.BytesIO()
    Image.new("RGB", (64, 64), BLUE).save(out, format="PNG")
    assert upload(client, end_of(transition)["id"], out.getvalue(), prompt="").status_code == 200
    done = rendered(client, transition["id"])
    assert done["status"] == "done", done
    last = np.asarray(Image.open(io.BytesIO(client.get(done["frames"][-1]["url"]).content)).convert("RGB"))
    assert np.abs(last.astype(np.float64) - np.array(BLUE)).mean() < 2.0


def test_an_image_segment_interpolates_text_from_the_caption(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-betweens of a segment from a prompt keyframe to a picture without a prompt interpolate the
    text embeddings between the prompt and the picture's caption (the morph's endpoints carry them)."""
    from core.timeline import check_keys, frames_at, keys_of
    from infra.storage import get_store
    from worker import captions, keyframe_images

    configure(monkeypatch, tmp_path / "data", models_dir=str(models_dir))
    project, data = _project("uniform")
    get_store().write(next(iter(project.images)), data)
    snapshot = project.snapshot("segue-tiny", "rev-test")
    monkeypatch.setattr(
        captions, "caption_for", lambda engine, image, sha, revision, store=None: "a planted one"
    )
    seen: dict[str, Any] = {}

    class Inverter:
        def keep_in(self, store: Any, namespace: str) -> None:
            pass

        def morph(self, a: Any, b: Any, ts: Any, **options: Any) -> list[Any]:
            seen.update(a=a.prompt, b=b.prompt, ts=list(ts))
            return [Image.new("RGB", (64, 64))] * len(ts)

    class Engine:
        inverter = Inverter()

        def render(self, pixels: Any, requests: Any, **options: Any) -> list[Any]:
            return [Image.new("RGB", (64, 64), (200, 0, 0))] * len(requests)

    keys = check_keys(keys_of(snapshot))
    plans = frames_at(keys, [0.5], seed=3)
    rows = keyframe_images.image_frames(snapshot, plans)
    keyframe_images.render(Engine(), snapshot, [None], rows, lambda plain: [])
    assert seen == {"a": "a futuristic cityscape", "b": "a planted one", "ts": [0.5]}
