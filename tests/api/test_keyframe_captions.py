"""A picture keyframe without a prompt (docs/image-endpoints.md): the prompt is optional beside an image (a
keyframe with neither is a 422 naming `prompt`, nothing saved), and a render captions the picture with the
model's own CLIP from its world's vocabulary, shown in GET /api/keyframes/{id} and in the page."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.pictures import (
    MINI_CLIP,
    create,
    end_of,
    picture,
    rendered,
    tiny_with_clip,
    upload,
    world_picture,
)


def test_the_prompt_is_optional_only_beside_an_image(client: TestClient) -> None:
    transition = create(client)
    tid, end = transition["id"], end_of(transition)
    # Neither prompt nor image: a 422 naming `prompt`, nothing added.
    refused = client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.5})
    assert refused.status_code == 422 and "prompt" in refused.json()["errors"], refused.text
    refused = client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.5, "prompt": "  "})
    assert refused.status_code == 422 and "prompt" in refused.json()["errors"], refused.text
    assert len(client.get(f"/api/transitions/{tid}").json()["keyframes"]) == 2
    # With an image the prompt may be left out (form or JSON).
    added = client.post(
        f"/api/transitions/{tid}/keyframes",
        data={"position": "0.5", "prompt": ""},
        files={"image": ("p.png", picture(), "image/png")},
    )
    assert added.status_code == 201, added.text
    assert added.json()["prompt"] == "" and added.json()["image"]["caption"] is None
    url = added.json()["image"]["url"]
    also = client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.25, "image_url": url})
    assert also.status_code == 201 and also.json()["prompt"] == "", also.text
    # The end keyframe: emptying its prompt needs an image; removing the image then needs a prompt.
    emptied = client.patch(f"/api/keyframes/{end['id']}", json={"prompt": ""})
    assert emptied.status_code == 422 and "prompt" in emptied.json()["errors"], emptied.text
    assert client.get(f"/api/keyframes/{end['id']}").json()["prompt"] == end["prompt"]
    both = upload(client, end["id"], picture(color=(20, 20, 200)), prompt="")
    assert both.status_code == 200 and both.json()["prompt"] == "", both.text
    version = client.get(f"/api/transitions/{tid}").json()["version"]
    lost = client.patch(f"/api/keyframes/{end['id']}", json={"image_url": None})
    assert lost.status_code == 422 and "prompt" in lost.json()["errors"], lost.text
    detail = client.get(f"/api/keyframes/{end['id']}").json()
    assert detail["image"] is not None and client.get(f"/api/transitions/{tid}").json()["version"] == version
    fixed = client.patch(f"/api/keyframes/{end['id']}", json={"image_url": None, "prompt": "a harbour"})
    assert fixed.status_code == 200 and fixed.json()["image"] is None


def test_keyframes_without_prompts_survive_project_export_and_import(client: TestClient) -> None:
    transition = create(client)
    tid = transition["id"]
    assert upload(client, end_of(transition)["id"], picture(), prompt="").status_code == 200
    added = client.post(
        f"/api/transitions/{tid}/keyframes",
        data={"position": "0.5"},
        files={"image": ("g.png", picture(color=(10, 200, 10)), "image/png")},
    )
    assert added.status_code == 201, added.text
    exported = client.get(f"/api/transitions/{tid}/project").content
    project = json.loads(exported)
    assert [k["prompt"] for k in project["keyframes"]] == [transition["start_prompt"], "", ""]
    imported = client.post("/api/projects", content=exported, headers={"content-type": "application/json"})
    assert imported.status_code == 201, imported.text
    assert [k["prompt"] for k in imported.json()["keyframes"]] == [transition["start_prompt"], "", ""]
    assert client.get(f"/api/transitions/{imported.json()['id']}/project").content == exported
    # A keyframe with neither prompt nor image is refused, naming its prompt; nothing is created.
    before = len(client.get("/api/transitions").json())
    del project["keyframes"][1]["image"]
    refused = client.post("/api/projects", json=project)
    assert refused.status_code == 422 and "keyframes.1.prompt" in refused.json()["errors"], refused.text
    assert len(client.get("/api/transitions").json()) == before


@pytest.mark.skipif(not (MINI_CLIP / "config.json").is_file(), reason="Segue-mini's CLIP is not in models/")
def test_a_render_captions_a_picture_without_a_prompt_with_the_models_clip(
    stack_factory: Any, models_dir: Path, tmp_path: Path
) -> None:
    models = tiny_with_clip(models_dir, tmp_path / "models")
    stack = stack_factory(mode="embedded", database="sqlite", models_dir=str(models))
    client = stack.client  # type: ignore[attr-defined]
    transition = create(client, width=64, height=64, batch_size=5)
    tid, end = transition["id"], end_of(transition)
    assert upload(client, end["id"], world_picture(), prompt="").status_code == 200
    assert client.get(f"/api/keyframes/{end['id']}").json()["image"]["caption"] is None  # not chosen yet
    page = client.get(f"/transitions/{tid}").text
    assert "no prompt: a render captions the picture" in page
    done = rendered(client, tid)
    assert done["status"] == "done", done
    caption = client.get(f"/api/keyframes/{end['id']}").json()["image"]["caption"]
    assert caption == "a red boat on the sea at night"
    assert f"captioned: {caption}" in client.get(f"/transitions/{tid}").text
    # The CLIP scorer measured the frames against the caption, the picture's text condition, not against an
    # empty prompt: the last frame's similarity to B is CLIP's for (that frame, the caption).
    from PIL import Image

    from engine.scorers import ClipScorer

    scores = client.get(f"/api/renders/{done['id']}/scores?scorer=clip").json()
    assert scores["scorer"] == "clip", scores
    last = done["frames"][-1]
    with Image.open(io.BytesIO(client.get(last["url"]).content)) as image:
        (expected,) = ClipScorer(str(MINI_CLIP)).score([image], [(transition["start_prompt"], caption)])
    (stored,) = [f["similarity"] for f in scores["frames"] if f["index"] == last["index"]]
    assert stored["b"] == pytest.approx(expected.sim_b, abs=2e-3)
    assert stored["b"] > stored["a"]  # the end frame is the picture: nearer its caption than the start prompt
    # Kept with the inversion: a second render reuses it (same caption, same in-betweens).
    again = rendered(client, tid)
    assert [f["url"] for f in again["frames"]] == [f["url"] for f in done["frames"]]
