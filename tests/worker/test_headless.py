"""`segue render`: a project file rendered from a shell, without the web app or a database, with the engine
and planner the studio uses (so it makes the studio's frames, under the same keys)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from tests.support.headless import segue_render
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]

PROJECT = {
    "segue_project": 1,
    "title": "City to forest",
    "model": "segue-tiny",
    "settings": {"seed": 3, "frames": 6, "steps": 2, "width": 64, "height": 64, "batch_size": 3},
    "keyframes": [
        {"position": 0, "prompt": "a futuristic cityscape"},
        {"position": 0.5, "prompt": "a city garden"},
        {"position": 1, "prompt": "a girl in a magical forest"},
    ],
}


def test_segue_render_writes_a_playable_video_a_gif_and_named_frames(
    tmp_path: Path, models_dir: Path
) -> None:
    project = tmp_path / "city.segue.json"
    project.write_text(json.dumps(PROJECT))
    result = segue_render(
        tmp_path,
        models_dir,
        str(project),
        "--out",
        "city-to-forest.mp4",
        "--gif",
        "city.gif",
        "--frames-dir",
        "frames",
        "--cache-dir",
        "cache",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "6/6 frames" in result.stderr and "6 rendered, 0 reused" in result.stderr  # the progress bar

    with av.open(str(tmp_path / "city-to-forest.mp4")) as container:
        stream = container.streams.video[0]
        pictures = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert (len(pictures), stream.average_rate, stream.codec_context.name) == (6, 12, "h264")
        assert pictures[0].shape == (64, 64, 3)
    with Image.open(tmp_path / "city.gif") as gif:
        assert gif.n_frames == 6
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names[0] == "0000_t0.0000.png" and names[-1] == "0005_t1.0000.png" and len(names) == 6
    # The video shows the frames (the tiny model's frames are coloured noise: H.264 keeps them roughly).
    for name, picture in zip(names, pictures, strict=True):
        source = np.asarray(Image.open(tmp_path / "frames" / name).convert("RGB"), dtype=np.float32)
        assert np.abs(picture.astype(np.float32) - source).mean() < 20
    # No web app, no database: nothing was written to the data dir.
    assert not (tmp_path / "data" / "segue.db").exists()

    # Again with the same frame store: every frame is reused (same keys), the engine is not even loaded.
    again = segue_render(
        tmp_path, models_dir, str(project), "--out", "sheet.png", "--loop", "--cache-dir", "cache"
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 rendered, 6 reused" in again.stderr and "loading" not in again.stderr
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.format == "PNG"


def test_segue_render_refuses_a_bad_project_naming_the_field(tmp_path: Path, models_dir: Path) -> None:
    project = tmp_path / "bad.json"
    project.write_text(json.dumps({**PROJECT, "settings": {**PROJECT["settings"], "steps": 0}, "extra": 1}))
    result = segue_render(tmp_path, models_dir, str(project), "--out", "x.mp4")
    assert result.returncode == 2
    assert "settings.steps: steps must be between 1 and 150 (got 0)" in result.stderr
    assert "extra: extra is not a known field" in result.stderr
    unknown = segue_render(tmp_path, models_dir, str(project), "--out", "x.avi")
    assert unknown.returncode == 2 and "cannot tell the format of 'x.avi'" in unknown.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_segue_render_makes_the_studios_frames(stack_factory: Any, tmp_path: Path, models_dir: Path) -> None:
    """The project of a studio render, rendered from a shell: the same frame keys and the same pixels."""
    stack = stack_factory(mode="embedded", database="sqlite")
    client = stack.client
    body = {
        "start_prompt": PROJECT["keyframes"][0]["prompt"],
        "end_prompt": PROJECT["keyframes"][-1]["prompt"],
    }
    transition = client.post("/api/transitions", json={**body, **PROJECT["settings"]}).json()
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
    detail = wait_for(
        lambda: (d := client.get(f"/api/renders/{render_id}").json())["status"] == "done" and d,
        what="the studio's render",
    )
    project = tmp_path / "studio.segue.json"
    project.write_bytes(client.get(f"/api/transitions/{transition['id']}/project").content)
    studio_frames = tmp_path / "data" / "frames"

    # Pointed at the studio's frame store, the shell finds every frame under the key the studio gave it.
    reused = segue_render(
        tmp_path, models_dir, str(project), "--gif", "reused.gif", "--cache-dir", str(studio_frames)
    )
    assert reused.returncode == 0, reused.stderr[-3000:]
    assert "0 rendered, 6 reused" in reused.stderr

    # Rendered afresh, the frames match the worker's pixel for pixel (within float noise).
    fresh = segue_render(tmp_path, models_dir, str(project), "--frames-dir", "fresh")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "6 rendered, 0 reused" in fresh.stderr
    names = sorted((tmp_path / "fresh").iterdir())
    for frame, path in zip(detail["frames"], names, strict=True):
        served = client.get(frame["url"]).content
        studio = np.asarray(Image.open(io.BytesIO(served)).convert("RGB"), dtype=np.int16)
        shell = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
        difference = np.abs(studio - shell)
        assert difference.mean() < 0.5 and difference.max() <= 8, (path.name, difference.max())
