"""Keyframe images through the API (docs/image-endpoints.md): upload, reuse a frame, remove, refuse bad files
with nothing stored, undo, frame keys, and the project file."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.support.pictures import create, end_of, picture, rendered, upload


def stored_files() -> list[Path]:
    from infra.config import get_settings

    root = get_settings().frames_dir
    return sorted(p for p in root.rglob("*.png")) if root.exists() else []


def test_an_end_keyframe_takes_an_image_shows_it_and_loses_it_again(client: TestClient) -> None:
    transition = create(client)
    end = end_of(transition)
    assert client.get(f"/api/keyframes/{end['id']}").json()["image"] is None
    data = picture()
    response = upload(client, end["id"], data)
    assert response.status_code == 200, response.text
    image = response.json()["image"]
    assert image["sha256"] == hashlib.sha256(data).hexdigest()  # a PNG is kept byte for byte
    assert (image["width"], image["height"]) == (80, 64)
    assert image["url"] == f"/media/frames/{image['sha256'][:2]}/{image['sha256']}.png"
    assert client.get(f"/api/keyframes/{end['id']}").json()["image"] == image
    served = client.get(image["url"])
    assert served.status_code == 200 and served.content == data

    # The history names it; undo takes the image away, redo brings it back.
    edits = client.get(f"/api/transitions/{transition['id']}/edits").json()
    assert f"an image 80 × 64 ({image['sha256'][:8]})" in edits[-1]["summary"]
    assert client.post(f"/api/transitions/{transition['id']}/undo").status_code == 200
    assert client.get(f"/api/keyframes/{end['id']}").json()["image"] is None
    assert client.post(f"/api/transitions/{transition['id']}/redo").status_code == 200
    assert client.get(f"/api/keyframes/{end['id']}").json()["image"] == image

    removed = client.patch(f"/api/keyframes/{end['id']}", json={"image_url": None})
    assert removed.status_code == 200 and removed.json()["image"] is None


def test_a_keyframe_is_added_with_an_image_or_a_frame_of_segue(client: TestClient) -> None:
    transition = create(client)
    jpeg = picture(fmt="JPEG")
    added = client.post(
        f"/api/transitions/{transition['id']}/keyframes",
        data={"position": "0.5", "prompt": "a garden"},
        files={"image": ("garden.jpg", jpeg, "image/jpeg")},
    )
    assert added.status_code == 201, added.text
    image = added.json()["image"]
    # A JPEG is kept as a PNG, under the hash of the PNG's bytes.
    stored = client.get(image["url"]).content
    assert stored.startswith(b"\x89PNG") and hashlib.sha256(stored).hexdigest() == image["sha256"]

    start = next(k for k in transition["keyframes"] if k["is_start"])
    reused = client.patch(f"/api/keyframes/{start['id']}", json={"image_url": image["url"]})
    assert reused.status_code == 200, reused.text
    assert reused.json()["image"] == image
    also = client.post(
        f"/api/transitions/{transition['id']}/keyframes",
        json={"position": 0.25, "prompt": "a lane", "image_url": "http://testserver" + image["url"]},
    )
    assert also.status_code == 201 and also.json()["image"]["sha256"] == image["sha256"]


def _truncated() -> bytes:
    return picture()[:-40]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "accepted: PNG"),
        (b"just some text, not a picture", "accepted: PNG"),
        (_truncated(), "cannot be read"),
        (picture((31, 200)), "at least 32"),
        (picture((120, 120)), "SEGUE_MAX_UPLOAD_MB"),
    ],
    ids=["svg", "text", "truncated", "too-small", "too-large"],
)
def test_bad_images_are_a_422_naming_the_field_and_nothing_is_stored(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, data: bytes, needle: str
) -> None:
    from infra.config import get_settings

    if needle == "SEGUE_MAX_UPLOAD_MB":
        monkeypatch.setattr(get_settings(), "max_upload_mb", len(data) / 1e6 - 1e-5)
    transition = create(client)
    end = end_of(transition)
    before = stored_files()
    refused = upload(client, end["id"], data)
    assert refused.status_code == 422, refused.text
    assert needle in refused.json()["errors"]["image"]
    added = client.post(
        f"/api/transitions/{transition['id']}/keyframes",
        data={"position": "0.5", "prompt": "a garden"},
        files={"image": ("x.png", data, "image/png")},
    )
    assert added.status_code == 422 and "image" in added.json()["errors"]
    assert stored_files() == before
    after = client.get(f"/api/transitions/{transition['id']}").json()
    assert after["version"] == transition["version"] and len(after["keyframes"]) == 2
    assert client.get(f"/api/keyframes/{end['id']}").json()["image"] is None


@pytest.mark.parametrize(
    "url",
    [
        "/media/frames/ab/notthere.png",
        "https://example.com/cat.png",
        "/media/frames/00/" + "0" * 40 + ".png",
        7,
    ],
)
def test_an_image_url_must_name_a_frame_of_segue(client: TestClient, url: Any) -> None:
    end = end_of(create(client))
    refused = client.patch(f"/api/keyframes/{end['id']}", json={"image_url": url})
    assert refused.status_code == 422 and "image_url" in refused.json()["errors"]


def _keys(render_id: int) -> list[str]:
    from sqlalchemy import select

    from infra.db import new_session
    from infra.tables import Frame

    with new_session() as db:
        return list(db.scalars(select(Frame.key).where(Frame.render_id == render_id).order_by(Frame.index)))


def test_the_image_is_part_of_the_frame_keys_and_only_of_the_frames_it_touches(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.config import get_settings

    monkeypatch.setattr(get_settings(), "max_active_renders", 10)  # five renders queued, none run here
    transition = create(client)
    tid, end = transition["id"], end_of(transition)
    plain = _keys(client.post(f"/api/transitions/{tid}/renders").json()["id"])
    upload(client, end["id"], picture())
    red = _keys(client.post(f"/api/transitions/{tid}/renders").json()["id"])
    upload(client, end["id"], picture(color=(20, 40, 200)))
    blue = _keys(client.post(f"/api/transitions/{tid}/renders").json()["id"])
    assert red[0] == plain[0] == blue[0]  # the start frame does not depend on the end's image
    assert all(r != p for r, p in zip(red[1:], plain[1:], strict=True))
    assert all(r != b for r, b in zip(red[1:], blue[1:], strict=True))
    client.patch(f"/api/transitions/{tid}", json={"image_endpoints": "reconstruction"})
    rebuilt = _keys(client.post(f"/api/transitions/{tid}/renders").json()["id"])
    assert rebuilt[-1] != blue[-1] and rebuilt[0] == blue[0]
    client.patch(f"/api/keyframes/{end['id']}", json={"image_url": None})
    client.patch(f"/api/transitions/{tid}", json={"image_endpoints": "image"})
    assert _keys(client.post(f"/api/transitions/{tid}/renders").json()["id"]) == plain


def test_image_keyframes_survive_project_export_and_import_byte_identical(client: TestClient) -> None:
    from infra.config import get_settings

    transition = create(client)
    tid = transition["id"]
    data = picture()
    image = upload(client, end_of(transition)["id"], data).json()["image"]
    inner = client.post(
        f"/api/transitions/{tid}/keyframes",
        data={"position": "0.5", "prompt": "a garden"},
        files={"image": ("g.png", picture(color=(10, 200, 10)), "image/png")},
    ).json()["image"]
    exported = client.get(f"/api/transitions/{tid}/project")
    assert exported.status_code == 200
    project = json.loads(exported.content)
    assert project["keyframes"][-1]["image"] == {k: image[k] for k in ("sha256", "width", "height")}
    assert set(project["images"]) == {image["sha256"], inner["sha256"]}

    # On a fresh frame store (another server), the import brings the images along.
    for path in stored_files():
        path.unlink()
    assert not stored_files() and get_settings().frames_dir.exists()
    imported = client.post(
        "/api/projects", content=exported.content, headers={"content-type": "application/json"}
    )
    assert imported.status_code == 201, imported.text
    new = imported.json()
    assert [k["image"] for k in new["keyframes"]] == [
        k["image"] for k in client.get(f"/api/transitions/{tid}").json()["keyframes"]
    ]
    assert client.get(image["url"]).content == data
    assert client.get(f"/api/transitions/{new['id']}/project").content == exported.content


def test_a_project_whose_image_bytes_do_not_match_is_refused(client: TestClient) -> None:
    transition = create(client)
    upload(client, end_of(transition)["id"], picture())
    project = json.loads(client.get(f"/api/transitions/{transition['id']}/project").content)
    (sha,) = project["images"]
    project["images"][sha] = project["images"][sha][:-8] + "AAAAAAA="
    refused = client.post("/api/projects", json=project)
    assert refused.status_code == 422, refused.text
    assert "images" in json.dumps(refused.json()["errors"])


def _pixels(client: Any, url: str) -> Any:
    import numpy as np

    return np.asarray(Image.open(io.BytesIO(client.get(url).content)).convert("RGB"), dtype=np.float64)


def test_a_render_ends_on_the_end_keyframes_image_and_a_plain_render_after_is_unchanged(
    stack_factory: Any,
) -> None:
    import numpy as np

    stack = stack_factory(mode="embedded", database="sqlite")
    client = stack.client  # type: ignore[attr-defined]
    transition = create(client, width=64, height=64, batch_size=5)
    tid, end = transition["id"], end_of(transition)
    before = rendered(client, tid)
    assert before["status"] == "done", before
    # A wide picture: the render shows its centre square resized to 64 x 64.
    wide = Image.new("RGB", (192, 64), (250, 250, 250))
    wide.paste(Image.new("RGB", (64, 64), (30, 90, 220)), (64, 0))
    out = io.BytesIO()
    wide.save(out, format="PNG")
    assert upload(client, end["id"], out.getvalue()).status_code == 200
    with_image = rendered(client, tid)
    assert with_image["status"] == "done", with_image
    last = _pixels(client, with_image["frames"][-1]["url"])
    assert last.shape == (64, 64, 3)
    assert np.abs(last - np.array([30, 90, 220])).mean() < 2.0  # the image itself, cropped and resized
    first_before, first_after = (_pixels(client, r["frames"][0]["url"]) for r in (before, with_image))
    assert np.array_equal(first_before, first_after)  # the start keyframe's frame is untouched
    middle = _pixels(client, with_image["frames"][2]["url"])
    assert not np.array_equal(middle, _pixels(client, before["frames"][2]["url"]))

    # Without the image, the same keys; rendered again from scratch (the store emptied), the same bytes.
    plain = [client.get(f["url"]).content for f in before["frames"]]
    client.patch(f"/api/keyframes/{end['id']}", json={"image_url": None})
    for path in stored_files():
        path.unlink()
    after = rendered(client, tid)
    assert [f["url"] for f in after["frames"]] == [f["url"] for f in before["frames"]]
    assert after["stats"]["frames_reused"] == 0
    assert [client.get(f["url"]).content for f in after["frames"]] == plain


def test_a_form_declaring_more_than_the_limit_is_refused_before_it_is_read(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from infra.config import get_settings

    monkeypatch.setattr(get_settings(), "max_upload_mb", 0.01)
    noise = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, format="PNG")
    assert len(out.getvalue()) > 10_000 + 256 * 1024
    end = end_of(create(client))
    before = stored_files()
    refused = upload(client, end["id"], out.getvalue())
    assert refused.status_code == 422 and "images of at most 0.01 MB" in refused.json()["errors"]["image"]
    assert stored_files() == before
