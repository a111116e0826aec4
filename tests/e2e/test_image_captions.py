"""A picture keyframe without a prompt in the browser, on the default model (Segue-mini): a person drops a
picture of its world on the end keyframe, empties the row's prompt and saves, renders, and the row shows
the caption Segue-mini's CLIP chose ("captioned: ..."), the same as GET /api/keyframes/{id}."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest

from tests.support.browser import DROP, editor_page, keep_screenshot
from tests.support.browser import api as _api

pytestmark = pytest.mark.e2e


def _world_picture() -> bytes:
    from training import world

    scene = world.Scene("night", "sea", None, None, [world.Obj("boat", "red", "center")])
    out = io.BytesIO()
    world.render(scene, seed=1).save(out, format="PNG")
    return out.getvalue()


def test_a_picture_without_a_prompt_is_captioned_in_its_row(  # type: ignore[no-untyped-def]
    server: str, browser, tmp_path: Path
) -> None:
    created = _api(
        server,
        "POST",
        "/api/transitions",
        {"start_prompt": "a red house in a snowy forest at day", "end_prompt": "a city at night",
         "frames": 5, "seed": 3, "steps": 8, "batch_size": 5, "width": 64, "height": 64,
         "title": "House to a picture"},
    )  # fmt: skip
    tid = created["id"]
    end = next(k for k in created["keyframes"] if k["is_end"])
    page = editor_page(server, browser, tid)
    row = f".keyframe[data-keyframe-id='{end['id']}']"
    zone = f"[data-keyframe-image='{end['id']}']"

    # Emptying the prompt of a keyframe without a picture is refused in the row, nothing saved.
    page.fill(f"{row} input[name=prompt]", "")
    page.click(f"{row} button:has-text('Save')")
    page.wait_for_function(
        "() => document.body.innerText.includes('a keyframe needs a prompt, an image, or both')"
    )
    assert _api(server, "GET", f"/api/keyframes/{end['id']}")["prompt"] == "a city at night"

    # With the picture dropped on the row, the prompt may be left empty.
    page.goto(f"{server}/transitions/{tid}")
    page.evaluate(DROP, [zone, base64.b64encode(_world_picture()).decode()])
    page.locator(f"{zone} img.kf-thumb").wait_for()
    page.fill(f"{row} input[name=prompt]", "")
    page.click(f"{row} button:has-text('Save')")
    page.wait_for_function(f'() => document.querySelector("{zone} .kf-caption") !== null')
    assert "a render captions the picture" in page.locator(f"{zone} .kf-caption").inner_text()
    assert _api(server, "GET", f"/api/keyframes/{end['id']}")["prompt"] == ""

    page.click("#render-button")
    page.locator("#render-head [data-status=done]").wait_for(timeout=300_000)
    caption = _api(server, "GET", f"/api/keyframes/{end['id']}")["image"]["caption"]
    assert caption == "a red boat on the sea at night"
    page.goto(f"{server}/transitions/{tid}")
    assert page.locator(f"{zone} .kf-caption").inner_text() == f"captioned: {caption}"
    page.locator(row).screenshot(path=str(tmp_path / "caption-row.png"))
    keep_screenshot(tmp_path, "caption-row.png")
    page.close()
