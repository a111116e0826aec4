"""A study in the browser (docs/studies.md): the researcher makes a triplet study of a real render and a
participant link; the participant reads the instructions, picks the odd one out of three frames item by item
(a reload in the middle resumes where they were), sees the thanks page; the researcher's study page shows
their answers, the agreement figures and a row per distance the render's scores give."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.browser import api, keep_screenshot

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def render_id(server: str) -> int:
    """One finished render of Segue-mini for the module's studies."""
    body = {"title": "Desert to snow", "start_prompt": "a desert at noon",
            "end_prompt": "a snowy field at night", "frames": 6, "seed": 2, "steps": 6}  # fmt: skip
    tid = api(server, "POST", "/api/transitions", body)["id"]
    rid = api(server, "POST", f"/api/transitions/{tid}/renders")["id"]
    deadline = time.monotonic() + 240
    while api(server, "GET", f"/api/renders/{rid}")["status"] != "done":
        assert time.monotonic() < deadline, "the render did not finish in 240 s"
        time.sleep(0.5)
    return int(rid)


def test_a_participant_answers_a_triplet_study_and_the_researcher_sees_the_answers(  # type: ignore[no-untyped-def]
    server: str, browser, render_id: int, tmp_path: Path
) -> None:
    study = api(server, "POST", "/api/studies", {
        "title": "Which frame is odd?", "render_ids": [render_id], "tasks": ["triplets"], "triplets": 3,
        "seed": 7,
        "instructions": "This takes a minute. Your answers are kept without your name.",
    })  # fmt: skip
    link = api(server, "POST", f"/api/studies/{study['id']}/participants", {"label": "P1"})

    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(server + link["url"])
    assert "kept without your name" in page.locator("#intro").inner_text()
    assert page.locator("#progress").inner_text() == "0 of 3 answered"
    page.click("#start")
    page.wait_for_function("() => document.querySelector('#item').dataset.kind === 'triplet'")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.triplet-choice img')].every(i => i.naturalWidth > 0)"
    )
    assert page.locator(".triplet-choice").count() == 3
    assert page.locator("#question").inner_text().startswith("1 of 3:")
    page.screenshot(path=str(tmp_path / "studies-participant.png"))
    keep_screenshot(tmp_path, "studies-participant.png")
    first_item = page.locator("#item").get_attribute("data-item-id")
    picked = page.locator(".triplet-choice").nth(2).get_attribute("data-index")
    page.locator(".triplet-choice").nth(2).click()
    page.wait_for_function(f"() => document.querySelector('#item').dataset.itemId !== '{first_item}'")
    assert page.locator("#progress").inner_text() == "1 of 3 answered"

    # A reload resumes at the next unanswered item.
    second_item = page.locator("#item").get_attribute("data-item-id")
    page.reload()
    assert page.locator("#progress").inner_text() == "1 of 3 answered"
    page.click("#start")
    page.wait_for_function(f"() => document.querySelector('#item').dataset.itemId === '{second_item}'")
    assert page.locator("#question").inner_text().startswith("2 of 3:")
    for _ in range(2):
        current = page.locator("#item").get_attribute("data-item-id")
        page.locator(".triplet-choice").first.click()
        moved_on = f"document.querySelector('#item').dataset.itemId !== '{current}'"
        page.wait_for_function(f"() => !document.querySelector('#done').hidden || {moved_on}")
    page.locator("#done").wait_for(state="visible")
    assert page.locator("#progress").inner_text() == "3 of 3 answered"

    answers = api(server, "GET", f"/api/studies/{study['id']}/answers")
    assert len(answers) == 3 and all(a["ms"] > 0 for a in answers)
    assert next(a for a in answers if str(a["item_id"]) == first_item)["answer"] == int(picked or -1)

    researcher = browser.new_page(viewport={"width": 1300, "height": 1400})
    researcher.goto(f"{server}/studies/{study['id']}")
    assert researcher.locator("#answer-count").inner_text() == "3"
    assert researcher.locator("#triplet-answers").inner_text() == "3"
    assert "3 of 3" in researcher.locator(f"tr[data-participant-id='{link['id']}']").inner_text()
    scorers = api(server, "GET", f"/api/renders/{render_id}/scores")["scorers"]
    shown = [
        row.get_attribute("data-distance") for row in researcher.locator("#distance-table tbody tr").all()
    ]
    assert set(scorers) <= set(shown), (scorers, shown)
    assert researcher.locator(".accuracy-plot rect").count() == 1 + len(shown)
    researcher.screenshot(path=str(tmp_path / "studies-results.png"), full_page=True)
    keep_screenshot(tmp_path, "studies-results.png")


def test_a_participant_rates_and_marks_and_the_mark_lands_on_the_timeline(  # type: ignore[no-untyped-def]
    server: str, browser, render_id: int
) -> None:
    study = api(server, "POST", "/api/studies", {
        "title": "When does it snow?", "render_ids": [render_id], "tasks": ["rate", "mark"],
        "concept": "snow",
    })  # fmt: skip
    link = api(server, "POST", f"/api/studies/{study['id']}/participants", {})
    page = browser.new_page(viewport={"width": 1000, "height": 1000})
    page.set_default_timeout(30_000)
    page.goto(server + link["url"])
    page.click("#start")
    page.wait_for_function("() => document.querySelector('#item').dataset.kind === 'rate'")
    assert page.locator(".study-strip img").count() == 6 and page.locator(".rating").count() == 5
    page.fill("#comment", "the snow arrives all at once")
    page.click(".rating[data-rating='2']")
    page.wait_for_function("() => document.querySelector('#item').dataset.kind === 'mark'")
    assert "Where does snow first appear?" in page.locator("#question").inner_text()
    assert page.locator("#confirm-mark").is_disabled()  # nothing marked yet
    box = page.locator(".study-strip").bounding_box()
    assert box
    page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] / 2)
    assert page.locator("#mark-readout").inner_text() == "t = 0.40"
    page.click("#confirm-mark")
    page.locator("#done").wait_for(state="visible")

    answers = {a["kind"]: a for a in api(server, "GET", f"/api/studies/{study['id']}/answers")}
    assert answers["rate"]["answer"] == 2 and answers["rate"]["comment"] == "the snow arrives all at once"
    assert abs(answers["mark"]["answer"] - 0.4) < 0.01

    researcher = browser.new_page(viewport={"width": 1300, "height": 1000})
    researcher.goto(f"{server}/studies/{study['id']}")
    figure = researcher.locator(f".mark-plot[data-render-id='{render_id}']")
    assert "1 marks, median t = 0.40" in figure.inner_text()
    svg, bar = figure.locator("svg").bounding_box(), figure.locator("rect.bar").bounding_box()
    assert svg and bar  # the one bar sits at t = 0.4 of the timeline (bin 0.40-0.45)
    assert abs((bar["x"] - svg["x"]) / svg["width"] - 0.4) < 0.01
