"""Watching a transition move: the player, the touchable timeline, and API docs that work offline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.support.browser import api as _api

pytestmark = pytest.mark.e2e
FRAMES = 24
SPACING = 1 / (FRAMES - 1)


def _inner_keyframes(server: str, transition_id: int) -> list[dict[str, Any]]:
    keyframes = _api(server, "GET", f"/api/transitions/{transition_id}")["keyframes"]
    return [k for k in keyframes if not (k["is_start"] or k["is_end"])]


def _position(server: str, keyframe_id: int, transition_id: int) -> float:
    return next(k["position"] for k in _inner_keyframes(server, transition_id) if k["id"] == keyframe_id)


def _wait(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.fixture(scope="module")
def transition_id(server: str) -> int:
    body = {
        "title": "Player",
        "start_prompt": "a futuristic cityscape",
        "end_prompt": "a girl in a magical forest",
        "frames": FRAMES,
        "steps": 5,
        "seed": 11,
        "model": "segue-tiny",  # random weights: quick frames of coloured noise
    }
    return int(_api(server, "POST", "/api/transitions", body)["id"])


@pytest.fixture
def page(browser) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1300, "height": 950})
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.close()
    assert not errors, f"JavaScript errors: {errors}"


def _index(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.get_attribute("[data-player]", "data-index"))


# Records what the player showed while the render ran: (index, frames it knew of, index actually shown).
RECORDER = """
window.__seen = [];
const player = document.querySelector('[data-player]');
new MutationObserver(() => window.__seen.push(
  [+player.dataset.index, +player.dataset.rendered, +player.dataset.showing]
)).observe(player, {attributes: true});
"""


def test_the_player_plays_a_render_while_it_runs_and_steps(server: str, page, transition_id: int) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{server}/transitions/{transition_id}")
    page.click("#render-button")
    page.locator("[data-player][data-ready]").wait_for()
    page.evaluate(RECORDER)
    page.keyboard.press("Space")  # play straight away, with whatever frames exist so far
    assert page.get_attribute("[data-player]", "data-playing") == "true"
    page.locator("#render-head [data-status=done]").wait_for(timeout=180_000)
    page.wait_for_function(
        "() => +document.querySelector('[data-player]').dataset.index >= 3", timeout=5_000
    )  # it keeps advancing at 12 fps
    seen = page.evaluate("window.__seen")
    assert len({index for index, _, _ in seen}) >= 3, seen
    known = [rendered for _, rendered, _ in seen]
    assert max(known) == FRAMES and any(0 < k < FRAMES for k in known), f"frames did not arrive live: {known}"
    # A frame not rendered yet showed the nearest rendered one, and said so.
    assert any(showing >= 0 and showing != index for index, _, showing in seen), seen

    page.keyboard.press("Space")
    assert page.get_attribute("[data-player]", "data-playing") == "false"
    start = _index(page)
    page.keyboard.press("ArrowLeft" if start == FRAMES - 1 else "ArrowRight")
    moved = _index(page)
    assert abs(moved - start) == 1
    page.keyboard.press("ArrowRight" if moved < start else "ArrowLeft")
    assert _index(page) == start
    page.keyboard.press("Home")  # not a player key: nothing happens
    page.click("[data-player-action=prev]")
    assert _index(page) == max(0, start - 1)
    # Arrows and space typed into a field stay in the field.
    page.click("#kf-prompt")
    page.keyboard.type("a b")
    page.keyboard.press("ArrowLeft")
    assert _index(page) == max(0, start - 1)
    assert page.get_attribute("[data-player]", "data-playing") == "false"
    page.fill("#kf-prompt", "")

    # The player's readout: index, t and prompt blend of the frame it shows; the frame is a real tile.
    page.evaluate("document.activeElement.blur()")
    for _ in range(_index(page)):
        page.keyboard.press("ArrowLeft")
    page.keyboard.press("Shift+ArrowRight")
    assert _index(page) == 10
    assert page.inner_text("[data-player-t]") == f"{10 / (FRAMES - 1):.3f}"
    assert "“a futuristic cityscape” +" in page.inner_text("[data-player-blend]")
    src = page.get_attribute(".player-image", "src")
    assert src == page.get_attribute("#frame-10 img", "src") and src.startswith("/media/frames/")
    assert page.locator("#frame-10.current").count() == 1


def test_clicking_the_timeline_inserts_a_keyframe_there(server: str, page, transition_id: int) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{server}/transitions/{transition_id}")
    bar = page.locator("[data-timeline]")
    box = bar.bounding_box()
    assert box
    clicked = 0.37
    page.mouse.click(box["x"] + box["width"] * clicked, box["y"] + box["height"] / 2)
    prefilled = float(page.input_value("#kf-position"))
    assert abs(prefilled - clicked) <= SPACING
    # The player follows the click too.
    assert abs(_index(page) - round(clicked * (FRAMES - 1))) <= 1
    assert page.evaluate("document.activeElement.id") == "kf-prompt"
    page.keyboard.type("a bridge between city and forest")
    page.click("text=Add keyframe")
    page.locator("[data-timeline] [data-keyframe-id]").first.wait_for()
    inner = _inner_keyframes(server, transition_id)
    assert len(inner) == 1
    assert abs(inner[0]["position"] - clicked) <= SPACING, inner


def test_dragging_a_marker_moves_its_keyframe(server: str, page, transition_id: int) -> None:  # type: ignore[no-untyped-def]
    (keyframe,) = _inner_keyframes(server, transition_id)
    page.goto(f"{server}/transitions/{transition_id}")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    marker = page.locator(f"[data-timeline] [data-keyframe-id='{keyframe['id']}']")
    bar = page.locator("[data-timeline]").bounding_box()
    start = marker.bounding_box()
    assert bar and start
    y = start["y"] + start["height"] / 2
    page.mouse.move(start["x"] + start["width"] / 2, y)
    page.mouse.down()
    target = 0.75
    page.mouse.move(bar["x"] + bar["width"] * target, y, steps=12)
    page.mouse.up()

    def moved() -> float | None:
        position = _position(server, keyframe["id"], transition_id)
        return position if position != keyframe["position"] else None

    position = _wait(moved)
    assert position is not None, "the drag did not change the keyframe"
    assert abs(position - target) <= SPACING
    page.locator(
        f"[data-timeline] [data-keyframe-id='{keyframe['id']}'][data-position='{position:g}']"
    ).wait_for()
    assert [u for u in posts if "/keyframes/" in u] == [f"{server}/keyframes/{keyframe['id']}"]  # one request

    # Onto another keyframe's spot: refused like the form refuses it, naming the field.
    taken = round(12 / (FRAMES - 1), 4)  # exactly where a drag snapping to frame 12 lands
    other = _api(
        server, "POST", f"/api/transitions/{transition_id}/keyframes", {"position": taken, "prompt": "taken"}
    )
    page.reload()
    marker = page.locator(f"[data-timeline] [data-keyframe-id='{keyframe['id']}']")
    start = marker.bounding_box()
    assert start
    page.mouse.move(start["x"] + start["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(bar["x"] + bar["width"] * (12 / (FRAMES - 1)), y, steps=12)
    page.mouse.up()
    error = page.locator(f"[id='{keyframe['id']}.position-error']")
    error.wait_for()
    assert "position" in error.inner_text() and "taken" in error.inner_text()
    positions = {k["id"]: k["position"] for k in _inner_keyframes(server, transition_id)}
    assert positions == {keyframe["id"]: position, other["id"]: taken}
    # Keyboard: a focused marker moves by one frame per arrow key and is saved once the keys rest.
    marker = page.locator(f"[data-timeline] [data-keyframe-id='{keyframe['id']}']")
    marker.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    nudged = _wait(lambda: _position(server, keyframe["id"], transition_id) != position)
    assert nudged, "an arrow key and Enter on a focused marker did not move it"
    assert abs(_position(server, keyframe["id"], transition_id) - (position + SPACING)) < 1e-3


def _offline(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Abort every request that leaves this machine; return the list of what was attempted."""
    blocked: list[str] = []

    def route(r) -> None:  # type: ignore[no-untyped-def]
        if urlparse(r.request.url).hostname in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return blocked


def test_swagger_ui_works_offline(server: str, page) -> None:  # type: ignore[no-untyped-def]
    blocked = _offline(page)
    page.goto(f"{server}/docs")
    page.locator(".opblock").first.wait_for()
    operations = page.locator(".opblock-summary-path").evaluate_all("els => els.map(e => e.dataset.path)")
    assert "/api/transitions" in operations and "/api/renders/{render_id}" in operations
    assert blocked == []


def test_redoc_works_offline(server: str, page) -> None:  # type: ignore[no-untyped-def]
    blocked = _offline(page)
    page.goto(f"{server}/redoc")
    page.locator("[data-section-id^='operation/']").first.wait_for()
    assert page.locator("[data-section-id^='operation/']").count() >= 5
    assert "/api/transitions" in page.inner_text("body")
    assert blocked == []
