"""A study compared with each U-Net block in the browser (docs/studies.md): people answer a triplet study of a
Segue-mini render; the researcher clicks "Compare with each U-Net block" on the results page, watches the
worker's progress, and the distance table, the plot and the block x noise grid grow a row per block."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.browser import api, keep_screenshot

pytestmark = pytest.mark.e2e
TIMESTEPS = 4


def test_the_researcher_compares_people_with_each_unet_block(server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    body = {"title": "Dunes to snow", "start_prompt": "a desert at noon",
            "end_prompt": "a snowy field at night", "frames": 6, "seed": 5, "steps": 6}  # fmt: skip
    tid = api(server, "POST", "/api/transitions", body)["id"]
    rid = api(server, "POST", f"/api/transitions/{tid}/renders")["id"]
    deadline = time.monotonic() + 240
    while api(server, "GET", f"/api/renders/{rid}")["status"] != "done":
        assert time.monotonic() < deadline, "the render did not finish in 240 s"
        time.sleep(0.5)
    study = api(server, "POST", "/api/studies", {
        "title": "Which layer sees like us?", "render_ids": [rid], "tasks": ["triplets"], "triplets": 10,
        "seed": 2,
    })  # fmt: skip
    for _ in range(3):  # three people, each picking the frame furthest in time from the other two
        token = api(server, "POST", f"/api/studies/{study['id']}/participants", {})["token"]
        while True:
            item = api(server, "GET", f"/api/p/{token}/next")
            if not item:  # 204: every item answered
                break
            idx = sorted(f["index"] for f in item["frames"])
            odd = idx[0] if idx[1] - idx[0] > idx[2] - idx[1] else idx[2]
            api(
                server,
                "POST",
                f"/api/p/{token}/answers",
                {"item_id": item["item_id"], "answer": odd, "ms": 900},
            )

    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    page.set_default_timeout(60_000)
    page.goto(f"{server}/studies/{study['id']}")
    assert page.locator("#block-grid").count() == 0
    before = page.locator("#distance-table tbody tr").count()
    page.click("#compare-blocks")
    page.wait_for_function("() => ['queued', 'running', 'done'].includes("
                           "document.querySelector('#block-panel')?.dataset.status)")  # fmt: skip
    # The worker reads the blocks; the panel polls, then the results are loaded again with the new rows.
    page.wait_for_function("() => document.querySelector('#block-grid') !== null", timeout=240_000)
    state = api(server, "GET", f"/api/studies/{study['id']}/blocks")
    assert state["status"] == "done" and state["frames_done"] == state["frames_total"] == 6
    blocks = page.locator("#block-grid tbody tr").count()
    assert blocks >= 3  # down blocks, the mid block, up blocks
    rows = page.locator("#distance-table tbody tr[data-distance^='unet/']")
    assert rows.count() == blocks * TIMESTEPS
    assert page.locator("#distance-table tbody tr").count() == before + blocks * TIMESTEPS
    assert page.locator("#block-grid tbody tr[data-block='mid_block'] th").inner_text() == "mid_block"
    assert (
        page.locator("tr[data-distance='unet/mid_block@t500'] td").first.inner_text()
        == "U-Net mid_block, t=500"
    )
    assert page.locator("#block-grid td.best").count() == 1
    assert page.locator(".accuracy-plot rect").count() == 1 + before + blocks * TIMESTEPS
    assert page.locator("#block-panel").get_attribute("data-status") == "done"
    assert "Compare with each U-Net block again" in page.locator("#compare-blocks").inner_text()
    results = api(server, "GET", f"/api/studies/{study['id']}/results")
    by_name = {d["name"]: d for d in results["distances"]}
    assert by_name["unet/mid_block@t500"]["triplet_answers"] == 30
    page.locator("#block-grid").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "studies-blocks.png"), full_page=True)
    keep_screenshot(tmp_path, "studies-blocks.png")
