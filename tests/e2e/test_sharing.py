"""Two people in two browsers: an editor shares a view link; the viewer, read only, sees the editor's
keyframe and render arrive live; undo with Ctrl+Z; two renders compared side by side."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.support.browser import keep_screenshot

pytestmark = pytest.mark.e2e

# Counts the viewer's finished film-strip frames each time the page changes (frames must stream in).
OBSERVER = """
window.__doneCounts = [];
new MutationObserver(() => {
  window.__doneCounts.push(document.querySelectorAll('.filmstrip [data-status="done"]').length);
}).observe(document.body, {subtree: true, childList: true});
window.__notReloaded = true;
"""


def _create(server: str) -> int:
    body = {
        "title": "Shared city to forest",
        "start_prompt": "a futuristic city at night",
        "end_prompt": "a girl in a magical forest",
        "frames": 16,
        "steps": 20,
        "seed": 5,
        "batch_size": 2,
    }
    request = urllib.request.Request(
        f"{server}/api/transitions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["id"]


def test_a_view_link_follows_the_editor_live_without_edit_controls(
    server: str, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    tid = _create(server)
    editor = browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()
    viewer_context = browser.new_context(viewport={"width": 1300, "height": 1000})
    viewer = viewer_context.new_page()
    for page in (editor, viewer):
        page.set_default_timeout(60_000)

    # The editor makes a view link in the Share panel and copies it.
    editor.goto(f"{server}/transitions/{tid}")
    editor.select_option("#share-role", "view")
    editor.click("#share-create")
    url = editor.locator("#new-link-url").input_value()
    assert "/s/" in url and len(url.rsplit("/", 1)[1]) >= 43

    # The viewer opens it: the transition, read only.
    viewer.goto(url)
    assert viewer.url.endswith(f"/transitions/{tid}")
    assert "View only" in viewer.locator("#editor-head").inner_text()
    for control in ("form[method=post]", "#keyframe-form", "#render-button", "#undo-button", "#share",
                    "[data-timeline]", "#settings-form input", "#settings-form textarea"):  # fmt: skip
        assert viewer.locator(control).count() == 0, control
    viewer.evaluate(OBSERVER)

    # The editor inserts a keyframe: it shows in the viewer's timeline without a reload.
    editor.fill("#kf-position", "0.4")
    editor.fill("#kf-prompt", "a garden in the city")
    editor.click("text=Add keyframe")
    editor.locator(".keyframe[data-position='0.4']").wait_for()
    viewer.locator(".keyframe[data-position='0.4']", has_text="a garden in the city").wait_for(timeout=20_000)
    assert "3 keyframes, 2 segments" in viewer.locator("#editor-head").inner_text()
    assert viewer.locator("#history .edit.current", has_text="a garden in the city").count() == 1

    # The editor renders: the viewer's film strip fills frame by frame, live.
    editor.click("#render-button")
    viewer.locator("#render-head [data-status=done]", has_text="Render #").wait_for(timeout=240_000)
    assert viewer.locator(".filmstrip [data-status=done]").count() == 16
    counts = viewer.evaluate("window.__doneCounts")
    assert any(0 < c < 16 for c in counts), f"frames did not stream into the viewer: {counts}"
    assert viewer.evaluate("window.__notReloaded") is True
    assert viewer.locator("#render-button").count() == 0  # the finished render offers no "Render again"
    editor.locator("#render-head [data-status=done]").wait_for(timeout=60_000)

    # The viewer cannot write even by hand (the server refuses, whatever the page shows).
    status = viewer.evaluate(
        f"fetch('/api/transitions/{tid}', {{method: 'PATCH', headers: {{'Content-Type': 'application/json'}},"
        " body: JSON.stringify({steps: 3})}).then(r => r.status)"
    )
    assert status == 403

    # Ctrl+Z in the editor takes the keyframe back; the viewer follows.
    editor.locator("h1").click()
    editor.keyboard.press("Control+z")
    editor.locator(".keyframe[data-position='0.4']").wait_for(state="detached")
    viewer.locator(".keyframe[data-position='0.4']").wait_for(state="detached", timeout=20_000)
    assert viewer.locator("#history .edit.current", has_text="undo").count() == 1
    editor.keyboard.press("Control+Shift+z")
    editor.locator(".keyframe[data-position='0.4']").wait_for()
    viewer.locator(".keyframe[data-position='0.4']").wait_for(timeout=20_000)

    viewer.evaluate("window.scrollTo(0, 0)")
    viewer.screenshot(path=str(tmp_path / "sharing.png"))
    keep_screenshot(tmp_path, "sharing.png")
    viewer_context.close()
    editor.close()


def test_two_renders_side_by_side(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    tid = _create(server)
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(f"{server}/transitions/{tid}")
    page.click("#render-button")
    page.locator("#render-head [data-status=done]").wait_for(timeout=240_000)
    page.fill("#kf-position", "0.5")
    page.fill("#kf-prompt", "a garden in the city")
    page.click("text=Add keyframe")
    page.locator(".keyframe[data-position='0.5']").wait_for()
    first = page.locator("#render-panel").get_attribute("data-render-id")
    page.click("#render-button")
    page.wait_for_function(f"() => document.querySelector('#render-panel').dataset.renderId !== '{first}'")
    page.locator("#render-head [data-status=done]").wait_for(timeout=240_000)
    page.reload()
    page.click("summary:has-text('Earlier renders')")
    page.locator("a.compare-link").first.click()
    page.wait_for_url("**/renders/compare?*")
    rows = page.locator(".compare-row[data-t]")
    assert rows.count() == 16
    # The two ends do not depend on the inserted keyframe: the same frames, marked identical.
    assert page.locator(".compare-row[data-identical=true]").count() >= 2
    assert page.locator(".compare-row[data-t='0.0'] .same-badge").count() == 1
    assert "only here" in page.locator(".compare-side").nth(1).inner_text()
    assert page.locator("#compare-metrics h2").inner_text() == "Metrics"
    page.close()
