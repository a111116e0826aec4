"""MoCE in the browser on the default model (Segue-mini, which ships its mini CLIP): a person turns on
sequential concepts for a keyframe whose prompt mixes two concepts up, sees the switch step search run and
its chosen N with the trace, renders, and the frames render."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.browser import api as _api
from tests.support.browser import editor_page

pytestmark = pytest.mark.e2e


def test_a_person_turns_on_sequential_concepts_sees_the_chosen_step_and_renders(  # type: ignore[no-untyped-def]
    server: str, browser, tmp_path: Path
) -> None:
    created = _api(
        server,
        "POST",
        "/api/transitions",
        {"start_prompt": "a desert at noon", "end_prompt": "a boat on the sea", "frames": 5, "seed": 3,
         "steps": 12, "title": "Desert to sea"},
    )  # fmt: skip
    tid = created["id"]
    body = {"position": 0.5, "prompt": "a boat in the desert"}
    keyframe = _api(server, "POST", f"/api/transitions/{tid}/keyframes", body)
    page = editor_page(server, browser, tid)

    # The keyframe's row: open "Sequential concepts (MoCE)", tick it, name the two concepts, leave N on auto.
    row = page.locator(f".keyframe[data-keyframe-id='{keyframe['id']}']")
    row.locator("summary", has_text="Sequential concepts (MoCE)").click()
    row.get_by_label("sequential concepts").check()
    row.get_by_label("first concept", exact=True).fill("a boat")
    row.get_by_label("second concept", exact=True).fill("a desert")
    row.get_by_label("second concept description").fill("sand dunes under the sky")
    assert row.get_by_label("concepts switch step").input_value() == "auto"
    row.locator("button", has_text="Save").click()

    # The search runs on the worker; the row polls it and shows the chosen step and every probe.
    row = page.locator(f".keyframe[data-keyframe-id='{keyframe['id']}']")
    status = row.locator(".moce-status")
    row.locator(".moce-status[data-status=done]").wait_for(timeout=300_000)
    chosen = _api(server, "GET", f"/api/keyframes/{keyframe['id']}")["moce"]
    assert chosen["status"] == "done" and 0 <= chosen["chosen_step"] <= 12
    assert f"switch step N = {chosen['chosen_step']}" in status.inner_text()
    probes = row.locator(".moce-trace tbody tr")
    assert probes.count() == len(chosen["trace"]) >= 1
    assert row.locator(".moce-trace tr.chosen .moce-n").inner_text() == str(chosen["chosen_step"])
    page.wait_for_function(
        "() => [...document.querySelectorAll('.moce-thumb')].every(i => i.complete && i.naturalWidth > 0)"
    )
    badge = row.locator(".kf-concepts summary").inner_text()
    assert f"N = {chosen['chosen_step']} (auto)" in badge  # the row's badge follows the search too
    row.scroll_into_view_if_needed()
    row.screenshot(path=str(tmp_path / "moce.png"))
    if os.environ.get("SEGUE_SCREENSHOTS"):
        shutil.copy(tmp_path / "moce.png", Path(os.environ["SEGUE_SCREENSHOTS"]) / "moce.png")

    # Render: the frames use the chosen step (the search is done, so the render starts) and all render.
    page.click("#render-button")
    page.locator("#render-head [data-status=done]").wait_for(timeout=300_000)
    assert page.locator(".filmstrip [data-status=done]").count() == 5
    page.wait_for_function(
        "() => [...document.querySelectorAll('.filmstrip img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    render = _api(server, "GET", f"/api/transitions/{tid}/renders")[0]
    frames = _api(server, "GET", f"/api/renders/{render['id']}")["frames"]
    on_keyframe = next(f for f in frames if f["t"] == 0.5)
    assert (on_keyframe["early_a"], on_keyframe["switch_step"]) == ("a boat", chosen["chosen_step"])
    page.screenshot(path=str(tmp_path / "moce-page.png"), full_page=True)
