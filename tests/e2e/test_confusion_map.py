"""The confusion map in the browser, on the default model: find the confusing frame from the plots,
insert a corrective prompt there with one click, and watch only that stretch re-render."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import api as _api
from tests.support.browser import keep_screenshot, render_again

pytestmark = pytest.mark.e2e


def test_a_person_finds_the_jump_and_corrects_it_there(server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Two segments, each a hard change in Segue-mini's world (day to night, desert to snow): jumps.
    created = _api(
        server,
        "POST",
        "/api/transitions",
        {
            "start_prompt": "a desert at noon",
            "end_prompt": "a snowy field at night",
            "frames": 13,
            "seed": 1,
            "steps": 10,
            "batch_size": 4,
            "title": "Desert to snow",
        },
    )
    tid = created["id"]
    _api(
        server, "POST", f"/api/transitions/{tid}/keyframes", {"position": 0.5, "prompt": "a desert at night"}
    )

    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(f"{server}/transitions/{tid}")
    page.click("#render-button")
    page.locator("#render-head [data-status=done]").wait_for(timeout=180_000)

    # Both plots are there, with a point per scored frame, and at least one flagged frame with a reason.
    page.locator("#scores .plot-progress").wait_for()
    assert page.locator("#scores .plot-change").count() == 1
    page.wait_for_function("() => document.querySelectorAll('#scores .plot-points .point').length === 13")
    assert page.locator("#scores .point.flagged").count() >= 1
    first_render = int(page.locator("#scores").get_attribute("data-render-id"))
    scores = _api(server, "GET", f"/api/renders/{first_render}/scores")
    # The list shows problems, worst first, as the API does; a fixable one (not a hold at the ends)
    problems = scores["problems"]
    on_keys = {0.0, 0.5, 1.0}
    fixable = [p for p in problems if p["kind"] != "plateau" and p["t"] not in on_keys]
    assert fixable, scores
    problem = fixable[0]
    listed = page.locator("#scores .problems").inner_text()
    assert problem["message"] in listed
    assert [p.get_attribute("data-problem") for p in page.locator("#scores .problem").all()] == [
        p["id"] for p in problems
    ]
    first = problem["frames"][0]
    # Every frame of a problem is outlined in the film strip too.
    outline = page.locator(f"#frame-{first} .frame-link").evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline == "solid"

    # One click on the problem's point opens the frame panel: the frame, its neighbours, why, insert there
    # (for a jump: between its two frames, at the problem's t).
    page.locator(f"#scores .point.flagged[data-index='{first}']").click()
    dialog = page.locator("#frame-dialog")
    dialog.locator(".why-flagged").wait_for()
    reason = next(f for f in scores["frames"] if f["index"] == first)["flags"][0]["message"]
    assert reason in dialog.locator(".why-flagged").inner_text()
    assert dialog.locator(".neighbours a").count() >= 1
    frame_t = next(f["t"] for f in scores["frames"] if f["index"] == first)
    t = problem["t"] if problem["kind"] == "jump" else frame_t
    insert = dialog.locator("form", has_text="Insert a corrective prompt")
    assert float(insert.locator("input[name=position]").input_value()) == pytest.approx(t, abs=1e-5)
    t = float(insert.locator("input[name=position]").input_value())
    insert.locator("input[name=prompt]").fill("a desert at sunset")
    insert.locator("button", has_text="Insert keyframe").click()
    page.wait_for_function("() => document.querySelectorAll('#timeline .keyframe').length === 4")
    assert page.locator("#timeline input[value='a desert at sunset']").count() == 1

    # Re-render: only the frames of the segment that changed are computed; the plots are redrawn for it.
    render_again(page)  # waits for the render this click started, not the previous one's badge
    page.wait_for_function(f"() => document.querySelector('#scores').dataset.renderId != '{first_render}'")
    second = int(page.locator("#scores").get_attribute("data-render-id"))
    detail = _api(server, "GET", f"/api/renders/{second}")
    keys = sorted(k["position"] for k in _api(server, "GET", f"/api/transitions/{tid}")["keyframes"])
    inserted = next(k for k in keys if abs(k - t) < 1e-9)
    left = max(k for k in keys if k < inserted)
    right = min(k for k in keys if k > inserted)
    changed = {f["index"] for f in detail["frames"] if left < f["t"] < right}
    computed = {f["index"] for f in detail["frames"] if not f["reused"]}
    assert computed == changed and 0 < len(computed) < 13
    assert detail["stats"]["frames_reused"] == 13 - len(computed)
    page.wait_for_function("() => document.querySelectorAll('#scores .plot-points .point').length === 13")
    page.screenshot(path=str(tmp_path / "confusion-map.png"), full_page=True)
    keep_screenshot(tmp_path, "confusion-map.png")
