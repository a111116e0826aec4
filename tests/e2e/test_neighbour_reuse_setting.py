"""Neighbour reuse in the form: beside the other savings, checked inline naming its range, saved, rendered."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

pytestmark = pytest.mark.e2e


def test_a_person_turns_on_neighbour_reuse_for_shared_in_betweens_and_renders(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1300, "height": 1100})
    page.set_default_timeout(60_000)
    page.goto(server + "/transitions/new")
    page.fill("#f-start_prompt", "a red boat on a lake")
    page.fill("#f-end_prompt", "a snowy mountain at dawn")
    page.fill("#f-frames", "5")
    page.fill("#f-steps", "4")
    page.locator("#f-in_between").select_option("shared")
    page.fill("#f-neighbour_reuse_from", "1.5")
    page.click("text=Create transition")
    page.locator("#neighbour_reuse_from-error").wait_for()
    message = page.inner_text("#neighbour_reuse_from-error")
    assert "neighbour_reuse_from must be a finite number between 0 and 1" in message

    page.fill("#f-neighbour_reuse_from", "0.5")
    page.click("text=Create transition")
    page.wait_for_url(re.compile(r".*/transitions/\d+$"))
    transition_id = int(page.url.rsplit("/", 1)[1])
    saved = json.load(urllib.request.urlopen(f"{server}/api/transitions/{transition_id}"))
    assert (saved["in_between"], saved["neighbour_reuse_from"]) == ("shared", 0.5)

    page.click("#render-button")
    page.locator("#render-head [data-status=done]").wait_for(timeout=180_000)
    assert page.locator(".filmstrip [data-status=done]").count() == 5
