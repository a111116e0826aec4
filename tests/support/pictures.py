"""Keyframe pictures through the API (docs/image-endpoints.md): a picture, a transition, uploading the picture
to a keyframe, and a render waited for until it is finished."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from tests.support.waiting import wait_for

CITY, FOREST = "a city street at night", "a forest in the morning"


def picture(
    size: tuple[int, int] = (80, 64), color: tuple[int, int, int] = (200, 40, 40), fmt: str = "PNG"
) -> bytes:
    image = Image.new("RGB", size, color)
    for x in range(0, size[0], 8):  # some structure, so the bytes are not trivially alike
        image.putpixel((x, x % size[1]), (x % 255, 255 - x % 255, 90))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    body = {"start_prompt": CITY, "end_prompt": FOREST, "frames": 5, "seed": 7, "steps": 3, **overrides}
    response = client.post("/api/transitions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def end_of(transition: dict[str, Any]) -> dict[str, Any]:
    return next(k for k in transition["keyframes"] if k["is_end"])


def upload(client: TestClient, keyframe_id: int, data: bytes, name: str = "pic.png", **form: str) -> Any:
    return client.patch(
        f"/api/keyframes/{keyframe_id}", files={"image": (name, data, "application/octet-stream")}, data=form
    )


def rendered(client: Any, transition_id: int) -> dict[str, Any]:

    render_id = client.post(f"/api/transitions/{transition_id}/renders").json()["id"]
    return wait_for(  # type: ignore[no-any-return]
        lambda: (d := client.get(f"/api/renders/{render_id}").json())["status"] in ("done", "failed") and d,
        timeout=240,
        what=f"render {render_id}",
    )


#: Segue-mini's own CLIP, as the model ships it (its captions and its scorer).
MINI_CLIP = Path(__file__).resolve().parents[2] / "models" / "segue-mini" / "clip"


def tiny_with_clip(models_dir: Path, target: Path) -> Path:
    """A models directory holding the tiny model with Segue-mini's CLIP beside it (as Segue-mini ships its
    own), so that renders caption pictures and score with CLIP."""
    shutil.copytree(models_dir / "segue-tiny", target / "segue-tiny")
    (target / "segue-tiny" / "clip").symlink_to(MINI_CLIP, target_is_directory=True)
    return target


def world_picture() -> bytes:
    """A PNG of Segue-mini's world that its CLIP captions as "a red boat on the sea at night"."""
    from training import world

    scene = world.Scene("night", "sea", None, None, [world.Obj("boat", "red", "center")])
    out = io.BytesIO()
    world.render(scene, seed=1).save(out, format="PNG")
    return out.getvalue()
