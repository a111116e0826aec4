"""Image endpoints in the browser on the default model (Segue-mini): a person drops a picture on the end
keyframe (a bad file first: refused inline, nothing saved), sees its thumbnail and the note on cropping,
renders, and the transition's last frame is the picture (cropped to the centre, resized); then removes it."""

from __future__ import annotations

import base64
import io
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.browser import DROP, editor_page, keep_screenshot
from tests.support.browser import api as _api

pytestmark = pytest.mark.e2e


def _picture() -> bytes:
    """96 x 64: grey margins around a 64 x 64 centre with a sunset-like gradient and a dark square."""
    image = Image.new("RGB", (96, 64), (128, 128, 128))
    centre = np.zeros((64, 64, 3), dtype=np.uint8)
    centre[..., 0] = 240
    centre[..., 1] = np.linspace(40, 200, 64, dtype=np.uint8)[:, None]
    centre[..., 2] = np.linspace(30, 120, 64, dtype=np.uint8)[None, :]
    centre[20:36, 24:40] = (20, 20, 60)
    image.paste(Image.fromarray(centre), (16, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _pixels(server: str, url: str) -> np.ndarray:
    with urllib.request.urlopen(server + url, timeout=30) as response:
        return np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"), dtype=np.float64)


def test_a_person_drops_a_picture_on_the_end_keyframe_and_the_render_ends_there(  # type: ignore[no-untyped-def]
    server: str, browser, tmp_path: Path
) -> None:
    created = _api(
        server,
        "POST",
        "/api/transitions",
        {"start_prompt": "a red house in a snowy forest at day", "end_prompt": "a boat on the sea at sunset",
         "frames": 6, "seed": 3, "steps": 12, "batch_size": 6, "width": 64, "height": 64,
         "title": "House to my picture"},
    )  # fmt: skip
    tid = created["id"]
    end = next(k for k in created["keyframes"] if k["is_end"])
    page = editor_page(server, browser, tid)
    zone = f"[data-keyframe-image='{end['id']}']"
    assert "resized to 64 × 64" in page.locator(zone).inner_text()

    # 1. Not a picture, through the file picker: refused in the row, nothing saved.
    page.locator(f"{zone} input[type=file]").set_input_files(
        files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"<svg></svg>"}]
    )
    error = page.locator(f"{zone} .kf-image-error")
    error.wait_for()
    assert "accepted: PNG" in error.inner_text()
    assert _api(server, "GET", f"/api/keyframes/{end['id']}")["image"] is None

    # 2. The picture, dropped on the end keyframe's row: the page shows its thumbnail.
    data = _picture()
    page.evaluate(DROP, [zone, base64.b64encode(data).decode()])
    page.locator(f"{zone} img.kf-thumb").wait_for()
    page.wait_for_function(f'() => document.querySelector("{zone} img.kf-thumb").complete')
    image = _api(server, "GET", f"/api/keyframes/{end['id']}")["image"]
    assert (image["width"], image["height"]) == (96, 64)
    row = page.locator(f".keyframe[data-keyframe-id='{end['id']}']")
    row.screenshot(path=str(tmp_path / "image-row.png"))
    keep_screenshot(tmp_path, "image-row.png")

    # 3. Render: the last frame is the picture's centre, resized to the transition's size.
    page.click("#render-button")
    page.locator("#render-head [data-status=done]").wait_for(timeout=300_000)
    page.wait_for_function("() => [...document.querySelectorAll('.filmstrip img')].every(i => i.complete)")
    page.locator(".filmstrip").screenshot(path=str(tmp_path / "image-strip.png"))
    keep_screenshot(tmp_path, "image-strip.png")
    last_url = page.locator(".filmstrip img").last.get_attribute("src")
    assert last_url
    last = _pixels(server, last_url)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)[:, 16:80]
    assert last.shape == (64, 64, 3)
    assert np.abs(last - expected).mean() < 3.0
    first = _pixels(server, page.locator(".filmstrip img").first.get_attribute("src") or "")
    assert np.abs(first - expected).mean() > 20.0  # the start is the start prompt's frame

    # 4. Remove it: the row goes back to an empty drop zone.
    page.locator(f"{zone} .kf-image-remove").click()
    page.locator(f"{zone}:not(.has-image)").wait_for()
    assert _api(server, "GET", f"/api/keyframes/{end['id']}")["image"] is None
