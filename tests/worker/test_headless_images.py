"""`segue render` renders projects with keyframe images (docs/image-endpoints.md) through the studio's image
path: the same frame keys and the same pixels as the studio's render, the end frame the picture itself."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.support.headless import segue_render
from tests.support.pictures import create, end_of, rendered, upload


def _picture() -> bytes:
    image = Image.new("RGB", (96, 64), (240, 240, 240))
    image.paste(Image.new("RGB", (64, 64), (30, 90, 220)), (16, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_segue_render_makes_the_studios_frames_of_a_project_with_keyframe_images(
    stack_factory: Any, tmp_path: Path, models_dir: Path
) -> None:
    stack = stack_factory(mode="embedded", database="sqlite")
    client = stack.client  # type: ignore[attr-defined]
    transition = create(client, width=64, height=64, batch_size=5)
    tid = transition["id"]
    # The end keyframe is only a picture (no prompt: the tiny model has no CLIP, so its caption is "").
    assert upload(client, end_of(transition)["id"], _picture(), prompt="").status_code == 200
    detail = rendered(client, tid)
    assert detail["status"] == "done", detail
    project = tmp_path / "images.segue.json"
    project.write_bytes(client.get(f"/api/transitions/{tid}/project").content)

    # Pointed at the studio's frame store, every frame is found under the key the studio gave it.
    reused = segue_render(
        tmp_path, models_dir, str(project), "--gif", "r.gif", "--cache-dir", str(tmp_path / "data" / "frames")
    )
    assert reused.returncode == 0, reused.stderr[-3000:]
    assert "0 rendered, 5 reused" in reused.stderr

    # Rendered afresh from the file alone (the picture travels in it), the same pixels within float noise.
    fresh = segue_render(tmp_path, models_dir, str(project), "--frames-dir", "fresh", "--out", "f.mp4")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "5 rendered, 0 reused" in fresh.stderr
    names = sorted((tmp_path / "fresh").iterdir())
    assert len(names) == len(detail["frames"]) == 5
    for frame, path in zip(detail["frames"], names, strict=True):
        studio = np.asarray(Image.open(io.BytesIO(client.get(frame["url"]).content)).convert("RGB"), np.int16)
        shell = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
        difference = np.abs(studio - shell)
        assert difference.mean() < 0.5 and difference.max() <= 8, (path.name, difference.max())
    last = np.asarray(Image.open(names[-1]).convert("RGB"), dtype=np.float64)
    assert np.abs(last - np.array([30, 90, 220])).mean() < 2.0  # the picture, centre-cropped and resized
    middle = np.asarray(Image.open(names[2]).convert("RGB"), dtype=np.float64)
    first = np.asarray(Image.open(names[0]).convert("RGB"), dtype=np.float64)
    assert np.abs(middle - last).mean() > 1.0 and np.abs(middle - first).mean() > 1.0  # a real in-between
