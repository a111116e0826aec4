"""Suggested bridges in the browser, offline, on the default model (Segue-mini) with the default suggester
(the packaged SmolLM2): ask for a segment, see them ranked with thumbnails, edit one and accept it, discard
another, then accept a whole storyboard."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.browser import api as _api
from tests.support.browser import editor_page

pytestmark = pytest.mark.e2e


def test_a_person_gets_bridges_for_a_segment_and_accepts_one(server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    created = _api(
        server,
        "POST",
        "/api/transitions",
        {"start_prompt": "a futuristic city at night", "end_prompt": "a sunny forest with a girl",
         "frames": 8, "seed": 1, "steps": 10, "title": "City to forest"},
    )  # fmt: skip
    tid = created["id"]
    page = editor_page(server, browser, tid)

    # One segment, one button on the suggestion bar; the first time, the language model loads in the worker.
    panel = page.locator("#suggestions")
    panel.locator("#suggest-run").wait_for(state="attached")
    buttons = panel.locator(".sg-segment button")
    assert buttons.count() == 1
    buttons.first.click()
    page.locator("#suggest-run[data-status=running], #suggest-run[data-status=queued]").first.wait_for()
    page.locator("#suggest-run[data-status=done]").wait_for(timeout=400_000)

    items = panel.locator(".suggestion")
    assert items.count() >= 1
    scores = [float(s) for s in panel.locator(".sg-score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)  # best first
    page.wait_for_function(
        "() => [...document.querySelectorAll('#suggestions .sg-thumb')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert "by SmolLM2-135M-Instruct (local)" in panel.locator(".sg-head").inner_text()
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(tmp_path / "suggestions.png"))
    if os.environ.get("SEGUE_SCREENSHOTS"):
        shutil.copy(tmp_path / "suggestions.png", Path(os.environ["SEGUE_SCREENSHOTS"]) / "suggestions.png")

    # Edit the best one, then accept it: an ordinary keyframe at its position, with the edited text.
    best = items.first
    position = float(best.locator("input[name=position]").input_value())
    best.locator("button", has_text="Edit").click()
    prompt = best.locator("input[name=prompt]")
    assert prompt.get_attribute("readonly") is None
    prompt.fill("a girl in a futuristic city at sunset")
    best.locator("button", has_text="Accept").click()
    page.wait_for_function("() => document.querySelectorAll('#timeline .keyframe').length === 3")
    assert page.locator("#timeline input[value='a girl in a futuristic city at sunset']").count() == 1
    keyframes = _api(server, "GET", f"/api/transitions/{tid}")["keyframes"]
    edited = [k["position"] for k in keyframes if k["prompt"] == "a girl in a futuristic city at sunset"]
    assert edited == [position]
    panel.locator(".suggestion.accepted").wait_for()
    assert "Inserted as a keyframe" in panel.locator(".suggestion.accepted").inner_text()
    # The suggestion bar follows the timeline: two segments now.
    page.wait_for_function("() => document.querySelectorAll('#suggestions .sg-segment').length === 2")

    # Discard another: it leaves the list.
    remaining = panel.locator(".suggestion:not(.accepted)")
    if remaining.count():
        before = items.count()
        remaining.first.locator("button", has_text="Discard").click()
        count = "document.querySelectorAll('#suggestions .suggestion').length"
        page.wait_for_function(f"() => {count} === {before - 1}")

    # A storyboard: a chain of two keyframes from start to end, accepted at once.
    page.select_option("#suggest-count", "2")
    page.click("#storyboard-button")
    page.locator("#suggest-run[data-mode=storyboard][data-status=done]").wait_for(timeout=300_000)
    chain = panel.locator(".suggestion")
    assert chain.count() >= 1
    values = chain.locator("input[name=position]").evaluate_all("e => e.map(i => i.value)")
    positions = [float(p) for p in values]
    assert positions == sorted(positions)
    page.click("[data-suggest-accept-all]")
    page.wait_for_function(
        f"() => document.querySelectorAll('#timeline .keyframe').length === {3 + chain.count()}"
    )
    assert len(_api(server, "GET", f"/api/transitions/{tid}")["keyframes"]) == 3 + len(positions)
