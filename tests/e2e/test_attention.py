"""Attention interpolation in the browser on the default model (Segue-mini): a person renders a transition,
turns on fused attention in the settings, re-renders (the keyframes are reused, the in-betweens are new),
sets one segment back to none in the keyframe's path settings, and renders it again from stored frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import api as _api
from tests.support.browser import editor_page, keep_screenshot, render_again

pytestmark = pytest.mark.e2e


def test_a_person_turns_on_fused_attention_and_per_segment_attention(  # type: ignore[no-untyped-def]
    server: str, browser, tmp_path: Path
) -> None:
    created = _api(
        server,
        "POST",
        "/api/transitions",
        {"start_prompt": "a red house in a snowy forest at day", "end_prompt": "a boat on the sea at sunset",
         "frames": 7, "seed": 3, "steps": 12, "batch_size": 7, "title": "House to boat"},
    )  # fmt: skip
    tid = created["id"]
    page = editor_page(server, browser, tid)

    # 1. A plain render first.
    page.click("#render-button")
    page.locator("#render-head [data-status=done]").wait_for(timeout=300_000)
    assert page.locator(".filmstrip [data-status=done]").count() == 7
    page.wait_for_function("() => [...document.querySelectorAll('.filmstrip img')].every(i => i.complete)")
    page.locator(".filmstrip").screenshot(path=str(tmp_path / "attention-none.png"))
    keep_screenshot(tmp_path, "attention-none.png")

    # 2. The settings: a bad fraction is explained inline and nothing is saved; then fused at 0.6.
    form = page.locator("#settings-form")
    form.locator("#f-attention_interpolation").select_option("fused")
    form.locator("#f-attention_steps").fill("2")
    form.locator("button", has_text="Save settings").click()
    error = page.locator("#attention_steps-error")
    error.wait_for()
    assert "attention_steps must be a finite number between 0 and 1" in error.inner_text()
    assert _api(server, "GET", f"/api/transitions/{tid}")["attention_interpolation"] == "none"
    page.locator("#f-attention_steps").fill("0.6")
    page.locator("#settings-form button", has_text="Save settings").click()
    page.locator("#settings-form .ok").wait_for()
    saved = _api(server, "GET", f"/api/transitions/{tid}")
    assert (saved["attention_interpolation"], saved["attention_steps"]) == ("fused", 0.6)
    page.locator("#settings-form fieldset.attention").screenshot(path=str(tmp_path / "attention-form.png"))
    keep_screenshot(tmp_path, "attention-form.png")

    # 3. Render again: the keyframes' frames are reused, every in-between is new.
    render_again(page, timeout=300_000)
    assert "2 reused" in page.locator("#render-head").inner_text()
    page.wait_for_function("() => [...document.querySelectorAll('.filmstrip img')].every(i => i.complete)")
    page.locator(".filmstrip").screenshot(path=str(tmp_path / "attention-fused.png"))
    keep_screenshot(tmp_path, "attention-fused.png")

    # 4. The start keyframe's segment back to none, in its path settings: its badge says so, and the
    # render is the plain one again, every frame reused.
    start = saved["keyframes"][0]
    row = page.locator(f".keyframe[data-keyframe-id='{start['id']}']")
    row.locator("summary", has_text="Seed, hold").click()
    row.get_by_label("segment attention interpolation").select_option("none")
    row.locator("button", has_text="Save").click()
    row = page.locator(f".keyframe[data-keyframe-id='{start['id']}']")
    row.locator(".kf-badge", has_text="attention none").wait_for()
    assert _api(server, "GET", f"/api/keyframes/{start['id']}")["attention_interpolation"] == "none"
    row.scroll_into_view_if_needed()
    row.screenshot(path=str(tmp_path / "attention-keyframe.png"))
    keep_screenshot(tmp_path, "attention-keyframe.png")
    render_again(page, timeout=300_000)
    assert "7 reused" in page.locator("#render-head").inner_text()
