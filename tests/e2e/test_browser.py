"""A person in headless Chromium: create a transition, render it, watch frames stream in, steer, return."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from tests.support.browser import keep_screenshot, render_again

pytestmark = pytest.mark.e2e


# Records how many film-strip frames were finished each time the strip changed, to prove they stream in.
OBSERVER = """
window.__doneCounts = [];
const strip = document.querySelector('.filmstrip');
new MutationObserver(() => {
  window.__doneCounts.push(strip.querySelectorAll('[data-status="done"]').length);
}).observe(strip, {subtree: true, childList: true});
"""


def test_a_person_renders_steers_and_returns(server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    model = json.load(urllib.request.urlopen(server + "/healthz"))["model"]  # the default a person gets
    page = browser.new_page(viewport={"width": 1300, "height": 950})
    page.set_default_timeout(60_000)
    page.goto(server)
    page.click("text=New transition")

    # Bad input is explained inline, next to the field, and nothing is created.
    page.fill("#f-start_prompt", "A futuristic cityscape, vibrant and detailed")
    page.fill("#f-end_prompt", "A cheerful young girl standing in a magical forest")
    page.fill("#f-frames", "700")
    page.click("text=Create transition")
    error = page.locator("#frames-error")
    error.wait_for()
    assert "between 2 and 600" in error.inner_text()
    assert page.locator("#f-start_prompt").input_value().startswith("A futuristic")  # what was typed is kept

    page.fill("#f-frames", "24")
    page.fill("#f-steps", "12")
    page.fill("#f-seed", "7")
    page.fill("#f-title", "City to forest")
    page.click("text=Create transition")
    page.wait_for_url(re.compile(r".*/transitions/\d+$"))
    transition_url = page.url
    assert page.locator("h1").inner_text() == "City to forest"

    # Render: frames arrive one by one into their places in the strip.
    page.click("#render-button")
    page.locator(".filmstrip").wait_for()
    page.evaluate(OBSERVER)
    page.locator("#render-head [data-status=done]").wait_for(timeout=180_000)
    counts = page.evaluate("window.__doneCounts")
    assert any(0 < c < 24 for c in counts), f"frames did not stream in: {counts}"
    assert page.locator(".filmstrip [data-status=done]").count() == 24
    assert "24 / 24" in page.locator(".progress-text").inner_text()

    # Open a frame: full size, with its prompt blend, t, seed and model.
    page.click("#frame-5 a")
    dialog = page.locator("#frame-dialog")
    dialog.wait_for(state="visible")
    facts = dialog.inner_text()
    assert "t\n0.2174" in facts or "0.2174" in facts
    assert "Seed" in facts and "7" in facts and model in facts
    assert "“A futuristic cityscape, vibrant and detailed”" in facts
    page.keyboard.press("Escape")

    # Steer: insert an intermediate prompt at t = 0.4 and re-render.
    page.fill("#kf-position", "0.4")
    page.fill("#kf-prompt", "a girl standing in a city garden")
    page.click("text=Add keyframe")
    page.locator(".keyframe[data-position='0.4']").wait_for()
    assert "3 keyframes, 2 segments" in page.locator("#editor-head").inner_text()
    # A keyframe on an existing position is refused inline.
    page.fill("#kf-position", "0.4")
    page.fill("#kf-prompt", "something else")
    page.click("text=Add keyframe")
    # (each keyframe row also holds an empty, hidden error line for its picture: wait for the refusal itself)
    page.locator("#timeline .error", has_text="taken").first.wait_for()

    render_again(page, timeout=180_000)
    head = page.locator("#render-head").inner_text()
    assert "2 reused" in head  # the endpoint frames did not change

    # Come back later: everything is still there.
    page.goto(transition_url)
    assert page.locator(".keyframe").count() == 3
    assert page.locator(".filmstrip [data-status=done]").count() == 24
    page.locator(".filmstrip img").last.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "screenshot.png"), full_page=True)
    keep_screenshot(tmp_path, "screenshot.png")

    page.goto(server)  # its row (the server is shared: another file's title may read the same)
    row = page.locator(f".transition-row[data-transition-id='{transition_url.rsplit('/', 1)[1]}']")
    assert row.locator(".title").inner_text() == "City to forest"
    assert row.locator(".thumbs img").count() == 8


def test_a_person_pages_back_to_older_transitions(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    import json

    def create(title: str) -> None:
        body = json.dumps({"start_prompt": "a city", "end_prompt": "a forest", "title": title}).encode()
        request = urllib.request.Request(
            f"{server}/api/transitions", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201

    # The oldest of this test's: a page (50) of newer ones after it; whatever other tests and files left on
    # the server is older still, on the pages after it.
    create("The oldest one")
    for i in range(50):
        create(f"Newer {i}")
    page = browser.new_page()
    page.goto(server)
    assert page.get_by_text("The oldest one").count() == 0
    assert page.locator(".pager").get_by_text("page 1 of").count() == 1

    def pager() -> tuple[int, int]:
        match = re.search(r"page (\d+) of (\d+)", page.locator(".pager").inner_text())
        assert match
        return int(match.group(1)), int(match.group(2))

    while page.get_by_text("The oldest one").count() == 0:
        page.get_by_role("link", name="Older →").click()
        page.wait_for_load_state()
    found, pages = pager()
    assert found == 2  # right after the page of the 50 newer ones
    page.get_by_role("link", name="← Newer").click()
    page.wait_for_load_state()
    assert pager()[0] == found - 1 and page.get_by_text("The oldest one").count() == 0
    # Older to the end: the page that offers no older one is the last (page N of N).
    while page.locator(".pager a[rel=next]").count():
        page.get_by_role("link", name="Older →").click()
        page.wait_for_load_state()
    assert pager() == (pages, pages)
    page.close()
