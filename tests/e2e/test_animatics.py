"""An animatic in the browser: upload a soundtrack, see its waveform and beat ticks under the timeline, snap
a keyframe to a beat, render, and play it with sound (the audio element's clock follows the player)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import api as _api
from tests.support.browser import keep_screenshot
from tests.support.clicks import click_wav

pytestmark = pytest.mark.e2e
FRAMES = 36  # 3 s at 12 fps


@pytest.fixture
def page(browser) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.close()
    assert not errors, f"JavaScript errors: {errors}"


def test_a_storyteller_times_a_transition_to_a_soundtrack(server: str, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    body = {
        "title": "Animatic",
        "start_prompt": "a futuristic cityscape",
        "end_prompt": "a girl in a magical forest",
        "frames": FRAMES,
        "steps": 4,
        "seed": 5,
        "model": "segue-tiny",
    }
    tid = int(_api(server, "POST", "/api/transitions", body)["id"])
    inner = _api(server, "POST", f"/api/transitions/{tid}/keyframes", {"position": 0.3, "prompt": "a garden"})
    data, clicks = click_wav(3.0)
    track = tmp_path / "voice-over.wav"
    track.write_bytes(data)

    page.goto(f"{server}/transitions/{tid}")
    assert "36 frames at 12 fps = 0:03.00" in page.inner_text("#editor-head")
    page.set_input_files("#audio-file", str(track))
    page.click("#audio-upload")
    page.locator("svg.waveform line.beat").first.wait_for(state="attached", timeout=60_000)
    beats = page.locator("svg.waveform line.beat")
    assert beats.count() >= 4
    assert page.locator("svg.waveform path").get_attribute("d").count("M") == 400
    assert "voice-over.wav" in page.inner_text(".soundtrack-info")
    assert "both 0:03.00 long" in page.inner_text("[data-fit]")
    page.locator("#timeline").screenshot(path=str(tmp_path / "animatics-timeline.png"))
    keep_screenshot(tmp_path, "animatics-timeline.png")

    page.click("#snap-beats")
    page.wait_for_function("() => document.querySelector('#editor-head').dataset.version === '4'")  # snapped
    keyframe = next(
        k for k in _api(server, "GET", f"/api/transitions/{tid}")["keyframes"] if k["id"] == inner["id"]
    )
    beat_times = [float(b) for b in _api(server, "GET", f"/api/transitions/{tid}/audio")["beats"]]
    assert min(abs(keyframe["time"] - b) for b in beat_times) < 1e-3, (keyframe, beat_times)
    assert min(abs(keyframe["time"] - c) for c in clicks) <= 1 / 12
    assert "moved to" in page.inner_text("#history")

    page.click("#render-button")
    try:
        page.locator("#render-head [data-status=done]").wait_for(timeout=300_000)
    except Exception:
        render = _api(server, "GET", f"/api/transitions/{tid}")["latest_render"]
        raise AssertionError(f"the render did not finish: {render}") from None
    page.locator("[data-player][data-ready]").wait_for()
    page.wait_for_function("() => document.querySelector('audio[data-player-audio]').readyState >= 2")
    page.click("[data-player-action=play]")
    page.wait_for_function(
        "() => document.querySelector('audio[data-player-audio]').currentTime > 0.5", timeout=10_000
    )
    audio_time = page.evaluate("document.querySelector('audio[data-player-audio]').currentTime")
    index = int(page.get_attribute("[data-player]", "data-index"))
    assert abs(index - audio_time * 12) <= 2, (index, audio_time)  # the picture follows the sound
    page.screenshot(path=str(tmp_path / "animatics-page.png"), full_page=True)
    keep_screenshot(tmp_path, "animatics-page.png")
    page.click("[data-player-action=play]")
    assert page.evaluate("document.querySelector('audio[data-player-audio]').paused") is True
    # Stepping moves the sound with the picture.
    page.click("[data-player-action=next]")
    index = int(page.get_attribute("[data-player]", "data-index"))
    audio_time = page.evaluate("document.querySelector('audio[data-player-audio]').currentTime")
    assert audio_time == pytest.approx(index / 12, abs=0.05)

    # The deliverable: a 24 fps MP4 with flow in-betweens and the sound, from the render panel.
    panel = page.locator(".export-panel form.export-form")
    panel.wait_for()
    panel.locator("select[name=format]").select_option("mp4")
    panel.locator("input[name=fps]").fill("24")
    panel.locator("select[name=inbetweens]").select_option("flow")
    assert "carry the soundtrack" in page.inner_text(".sound-hint")
    panel.locator("button.export-button").click()
    link = page.locator(".export-item[data-format=mp4][data-status=done] a.export-download")
    link.wait_for(timeout=120_000)
    video = tmp_path / "animatic.mp4"
    with urllib.request.urlopen(server + link.get_attribute("href"), timeout=30) as response:
        video.write_bytes(response.read())
    import av

    with av.open(str(video)) as container:
        frames = sum(1 for _ in container.decode(container.streams.video[0]))
        assert float(container.streams.video[0].average_rate) == 24
    with av.open(str(video)) as container:
        stream = container.streams.audio[0]
        samples = sum(f.samples for f in container.decode(stream))
        seconds = samples / stream.codec_context.sample_rate
    assert frames == FRAMES * 2 and seconds == pytest.approx(FRAMES / 12, abs=1 / 24)
