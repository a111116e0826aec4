"""Review notes in two browsers (docs/notes.md): the owner shares a comment link; its holder adds a note
(their name remembered by the browser); the owner sees it arrive live, without a reload, and resolves it;
the commenter's open list loses it live; the commenter never gets a resolve button."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.support.browser import api as _api

pytestmark = pytest.mark.e2e


def _create(server: str) -> int:
    body = {
        "title": "Animatic review",
        "start_prompt": "a city at night",
        "end_prompt": "a forest",
        "frames": 8,
    }
    request = urllib.request.Request(
        f"{server}/api/transitions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["id"]


def test_a_commenter_adds_a_note_the_owner_sees_it_live_and_resolves_it(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    tid = _create(server)
    owner = browser.new_context(viewport={"width": 1300, "height": 1100}).new_page()
    commenter = browser.new_context(viewport={"width": 1300, "height": 1100}).new_page()
    for page in (owner, commenter):
        page.set_default_timeout(30_000)

    owner.goto(f"{server}/transitions/{tid}")
    owner.locator("#notes #notes-live").wait_for()
    assert owner.locator("#notes .notes-empty").inner_text() == "No open notes."
    owner.select_option("#share-role", "comment")
    owner.click("#share-create")
    url = owner.locator("#new-link-url").input_value()
    assert owner.locator("#share .role-comment").count() == 1
    owner.evaluate("window.__notReloaded = true")

    commenter.goto(url)
    assert "Commenting through a share link" in commenter.locator("#editor-head").inner_text()
    assert commenter.locator("#settings-form input, #keyframe-form, #render-button, #share").count() == 0
    commenter.locator("#note-form").wait_for()
    commenter.fill("#note-author", "Ada")
    # t follows the player's frame (the player announces each frame it shows) until one is typed.
    commenter.evaluate(
        "() => document.dispatchEvent(new CustomEvent('segue:playhead', {detail: {t: 0.428571, index: 3}}))"
    )
    assert commenter.locator("#note-t").input_value() == "0.4286"
    commenter.fill("#note-t", "0.3")
    commenter.evaluate(
        "() => document.dispatchEvent(new CustomEvent('segue:playhead', {detail: {t: 0.9, index: 7}}))"
    )
    assert commenter.locator("#note-t").input_value() == "0.3"
    commenter.fill("#note-t-end", "0.45")
    commenter.fill("#note-text", "the girl pops in here")
    commenter.click("#note-add")
    commenter.locator("#notes-list .note", has_text="the girl pops in here").wait_for()
    assert commenter.locator(".note-resolve").count() == 0  # a comment link resolves nothing

    # The owner's page, untouched, shows it: in the list and as a marker band at t 0.3 to 0.45.
    note = owner.locator("#notes-list .note", has_text="the girl pops in here")
    note.wait_for(timeout=20_000)
    assert "Ada" in note.inner_text() and "t 0.3–0.45" in note.inner_text()
    assert owner.evaluate("() => window.__notReloaded") is True
    mark = owner.locator(".notes-bar .note-mark.range")
    bar = owner.locator(".notes-bar").bounding_box()
    box = mark.bounding_box()
    assert bar and box
    assert abs((box["x"] - bar["x"]) / bar["width"] - 0.3) < 0.01
    assert abs(box["width"] / bar["width"] - 0.15) < 0.01
    # ... and on the timeline itself, at the same place.
    tick = owner.locator("#timeline .timeline-bar > .note-tick.range").bounding_box()
    timeline = owner.locator("#timeline .timeline-bar").bounding_box()
    assert tick and timeline
    assert abs((tick["x"] - timeline["x"]) / timeline["width"] - 0.3) < 0.01
    owner.screenshot(path="/tmp/notes-owner.png", full_page=True)

    # The commenter replies; the owner resolves; the commenter's open list loses the note, live.
    commenter.fill("#notes-list .reply-form input[name=text]", "and hold the last frame longer")
    commenter.click("#notes-list .reply-form button")
    owner.locator(".note-reply", has_text="hold the last frame longer").wait_for(timeout=20_000)
    assert "Ada" in owner.locator(".note-reply").inner_text()
    owner.click("#notes-list .note-resolve")
    commenter.wait_for_function(
        "() => document.querySelector('#notes-list .notes-empty') !== null", timeout=20_000
    )
    assert commenter.locator("#notes-live button[data-show=resolved] .count").inner_text() == "1"
    commenter.click("#notes-live button[data-show=resolved]")
    commenter.locator("#notes-list .note.status-resolved", has_text="the girl pops in here").wait_for()

    # The commenter's name is remembered by their browser.
    commenter.reload()
    commenter.locator("#note-form").wait_for()
    commenter.wait_for_function("() => document.getElementById('note-author').value === 'Ada'")
    commenter.screenshot(path="/tmp/notes-commenter.png", full_page=True)


def test_a_frame_of_a_render_takes_a_note_at_its_t(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    import time

    body = {"start_prompt": "a city at night", "end_prompt": "a forest", "frames": 5, "steps": 4, "seed": 2}
    tid = _api(server, "POST", "/api/transitions", body)["id"]  # type: ignore[index]
    render = _api(server, "POST", f"/api/transitions/{tid}/renders")["id"]  # type: ignore[index]
    deadline = time.monotonic() + 240
    while _api(server, "GET", f"/api/renders/{render}")["status"] != "done":  # type: ignore[index]
        assert time.monotonic() < deadline, "the render did not finish"
        time.sleep(0.5)
    link = _api(server, "POST", f"/api/transitions/{tid}/links", {"role": "comment"})

    page = browser.new_context(viewport={"width": 1300, "height": 1100}).new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{server}{link['url']}")  # type: ignore[index]
    page.locator("#note-form").wait_for()
    tile = page.locator("#frame-2")
    frame_t = float(tile.get_attribute("data-t") or "nan")
    tile.click()  # the frame's dialog opens
    page.locator("#frame-dialog [data-note-at]").click()
    assert float(page.locator("#note-t").input_value()) == frame_t
    assert page.locator("#frame-dialog").evaluate("(d) => d.open") is False
    page.fill("#note-text", "too dark here")
    page.click("#note-add")
    note = page.locator("#notes-list .note", has_text="too dark here")
    note.wait_for()
    assert float(note.get_attribute("data-t") or "nan") == frame_t
    page.screenshot(path="/tmp/notes-frame.png", full_page=True)
