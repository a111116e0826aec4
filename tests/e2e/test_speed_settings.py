"""The U-Net savings in the form: checked inline naming the field, saved, and rendered with."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_a_person_sets_guidance_until_and_deep_cache_and_renders(  # type: ignore[no-untyped-def]
    server: str, browser, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1300, "height": 1100})
    page.set_default_timeout(60_000)
    page.goto(server + "/transitions/new")
    page.fill("#f-start_prompt", "a red boat on a lake")
    page.fill("#f-end_prompt", "a snowy mountain at dawn")
    page.fill("#f-frames", "3")
    page.fill("#f-steps", "4")
    page.fill("#f-guidance_until", "1.5")
    page.fill("#f-deep_cache_interval", "0")
    page.fill("#f-deep_cache_from", "2")
    page.click("text=Create transition")
    page.locator("#guidance_until-error").wait_for()
    message = page.inner_text("#guidance_until-error")
    assert "guidance_until must be a finite number between 0 and 1" in message
    assert "between 1 and 150" in page.inner_text("#deep_cache_interval-error")
    from_error = page.inner_text("#deep_cache_from-error")
    assert "deep_cache_from must be a finite number between 0 and 1" in from_error
    page.locator("fieldset.speed").screenshot(path=str(tmp_path / "speed-settings-errors.png"))

    page.fill("#f-guidance_until", "0.5")
    page.fill("#f-deep_cache_interval", "2")
    page.fill("#f-deep_cache_from", "0.5")
    page.click("text=Create transition")
    page.wait_for_url(re.compile(r".*/transitions/\d+$"))
    transition_id = int(page.url.rsplit("/", 1)[1])
    saved = json.load(urllib.request.urlopen(f"{server}/api/transitions/{transition_id}"))
    assert (saved["guidance_until"], saved["deep_cache_interval"], saved["deep_cache_from"]) == (0.5, 2, 0.5)

    page.click("#render-button")
    page.locator("#render-head [data-status=done]").wait_for(timeout=180_000)
    assert page.locator(".filmstrip [data-status=done]").count() == 3
    page.screenshot(path=str(tmp_path / "speed-settings-render.png"), full_page=True)
