"""The loop in the browser on the default model: the map lists problems, Fix proposes probed fixes and
Apply re-renders only what changed, the autopilot runs rounds live, and the create form lands on the
transition's own address."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import api as _api
from tests.support.browser import keep_screenshot, running_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, llm_cache: Path) -> Iterator[str]:
    """This module's own `segue run` (not the process's shared one): it suggests bridges from templates
    (SEGUE_SUGGESTER=template; SmolLM2 is the browser suggestions test's), and ends with the module."""
    with running_server(
        tmp_path_factory.mktemp("e2e-loop-data"), models_dir, llm_cache, SEGUE_SUGGESTER="template"
    ) as url:
        yield url


def _problems(page) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
    return [
        (p.get_attribute("data-problem"), float(p.get_attribute("data-severity")))
        for p in page.locator("#scores .problem").all()
    ]


def test_creating_a_transition_lands_on_its_own_address(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(f"{server}/transitions/new")
    page.fill("#f-start_prompt", "a futuristic city at night")
    page.fill("#f-end_prompt", "a sunny forest with a girl")
    page.fill("#f-frames", "24")
    page.locator("#new-form button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/transitions/\d+$"))
    address = page.url
    page.reload()
    assert page.url == address
    assert page.locator("h1").inner_text().startswith("a futuristic city at night")
    page.go_back()
    page.go_forward()
    assert page.url == address
    page.close()


def test_a_person_fixes_a_jump_and_lets_the_autopilot_take_the_rest(
    server: str, browser, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
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
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.set_default_timeout(120_000)
    page.goto(f"{server}/transitions/{tid}")
    page.click("#render-button")
    page.locator("#render-head [data-status=done]").wait_for(timeout=180_000)

    # The map lists problems, worst first, as the API does
    page.locator("#scores .problem").first.wait_for()
    first_render = int(page.locator("#scores").get_attribute("data-render-id"))
    api_problems = _api(server, "GET", f"/api/renders/{first_render}/scores")["problems"]
    shown = _problems(page)
    assert [p for p, _ in shown] == [p["id"] for p in api_problems]
    worst = api_problems[0]
    assert worst["kind"] == "jump"

    # Fix: up to three probed proposals, each with its thumbnail and predicted change; Apply one
    page.locator(f"#scores .problem[data-problem='{worst['id']}'] button", has_text="Fix").click()
    page.locator("#autofix .af-fix-run[data-status=done]").wait_for(timeout=240_000)
    proposals = page.locator("#autofix .af-proposal")
    assert 1 <= proposals.count() <= 3
    assert page.locator("#autofix .af-proposal img").count() >= 1
    assert re.search(r"\d\.\d{3} → \d\.\d{3}", proposals.first.inner_text())
    page.locator("#autofix").screenshot(path=str(tmp_path / "loop.png"))
    keep_screenshot(tmp_path, "loop.png")
    versions = _api(server, "GET", f"/api/transitions/{tid}")["version"]
    proposals.first.locator("button", has_text="Apply").click()
    page.wait_for_url(re.compile(rf".*/transitions/{tid}\?render=\d+$"))
    page.locator("#render-head [data-status=done]").wait_for(timeout=180_000)
    assert _api(server, "GET", f"/api/transitions/{tid}")["version"] == versions + 1
    history = page.locator("#history").inner_text()
    assert f"fixes the jump between #{worst['frames'][0]} and #{worst['frames'][1]}" in history
    applied = int(re.search(r"render=(\d+)", page.url).group(1))  # type: ignore[union-attr]
    stats = _api(server, "GET", f"/api/renders/{applied}")["stats"]
    assert stats["frames_computed"] < stats["frames_total"]  # only the changed stretch, probes reused
    after_fix = _problems(page)

    # Autopilot: live rounds, each kept or undone, and a reason to stop
    page.fill("#autofix input[name=max_rounds]", "2")
    page.click("#autofix-button")
    page.locator("#autofix .af-run[data-status=done]").wait_for(timeout=600_000)
    run_id = int(page.locator("#autofix .af-run").get_attribute("data-autofix-id"))
    run = _api(server, "GET", f"/api/autofix/{run_id}")
    assert run["status"] == "done" and run["stopped_because"]
    assert "Stopped: " + run["stopped_because"] in page.locator("#autofix").inner_text()
    assert page.locator("#autofix .af-round").count() == len(run["rounds"])
    page.reload()
    final = _problems(page)
    worst_of = max((s for _, s in after_fix), default=0.0)
    kept = [r for r in run["rounds"] if r["outcome"] == "kept"]
    if kept:  # the map got calmer: the worst problem the autopilot left is below where it started
        assert max((s for _, s in final), default=0.0) < worst_of
    else:  # every round it tried was undone: the map is as it was
        assert final == after_fix
    page.close()
