"""Animatics, pure parts: time codes, the clock, audio-driven spacing on a 120 BPM click track at 12 fps,
the in-between schedule, and a cut crossfaded, not warped (flow against a crossfade:
tests/bench/test_flow.py)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.spacing import audio_positions, grid
from core.timecode import Clock, format_time, parse_time
from tests.support.clicks import click_samples

FPS = 12


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0:02.5", 2.5),
        ("2.5", 2.5),
        ("2.5s", 2.5),
        ("1:00:02.5", 3602.5),
        (".5", 0.5),
        (3, 3.0),
        ("12:00", 720),
    ],
)
def test_times_parse(text: str | float, seconds: float) -> None:
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-1", "0:75", "1:2:3:4", "nan"])
def test_bad_times_name_the_field(text: str) -> None:
    with pytest.raises(ValueError, match="^time"):
        parse_time(text)


def test_times_format_and_round_trip() -> None:
    assert (
        format_time(2.5) == "0:02.50"
        and format_time(3602.5) == "1:00:02.50"
        and format_time(59.999) == "1:00.00"
    )
    assert parse_time(format_time(83.27)) == pytest.approx(83.27)


def test_the_clock_maps_time_and_t_through_the_frames() -> None:
    uniform = Clock.of(grid(25), FPS)
    assert uniform.duration == pytest.approx(25 / 12) and uniform.last_time == 2.0
    assert uniform.t_at(1.0) == pytest.approx(0.5) and uniform.seconds_of(0.5) == pytest.approx(1.0)
    # A hold: the keyframe's frame shows three times; its t is first shown at its first frame.
    held = Clock.of([0.0, 0.25, 0.5, 0.5, 0.5, 0.75, 1.0], FPS)
    assert held.seconds_of(0.5) == pytest.approx(2 / 12) and held.seconds_of(0.75) == pytest.approx(5 / 12)
    assert held.t_at(3 / 12) == 0.5 and held.frame_at(3.5 / 12) == 3


# ---------------------------------------------------------------- audio-driven spacing


def click_energies(seconds: float = 8.0) -> tuple[list[float], list[float], dict[str, Any]]:
    from services import audio

    samples, clicks = click_samples(seconds)
    import av  # resample to the analysis rate as an upload would

    resampler = av.AudioResampler(format="flt", layout="mono", rate=audio.ANALYSIS_RATE)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = 44100
    mono = np.concatenate(
        [f.to_ndarray().reshape(-1) for f in [*resampler.resample(frame), *resampler.resample(None)]]
    )
    analysis = audio.analyse(mono)
    return audio.frame_energies(analysis, int(seconds * FPS), FPS, 0.0), clicks, analysis


def test_a_120_bpm_click_track_at_12_fps_beats_and_audio_spacing() -> None:
    energies, clicks, analysis = click_energies()
    # Beats within one frame of a click, and most clicks found.
    beats = analysis["beats"]
    assert len(beats) >= 0.8 * len(clicks)
    assert all(min(abs(b - c) for c in clicks) <= 1 / FPS for b in beats)

    positions = audio_positions(energies, smooth=0.0)
    assert positions[0] == 0.0 and positions[-1] == 1.0
    assert all(b > a for a, b in zip(positions, positions[1:], strict=False))
    steps = np.diff(positions)
    largest = np.argsort(steps)[-len(clicks) :]
    # Step i is from frame i (at i/12 s) to frame i + 1: a click heard in between moves it.
    near = [min(abs(i / FPS - c) for c in clicks) <= 1 / FPS for i in largest]
    assert sum(near) >= 0.8 * len(largest)
    # Silence rests: the small steps are tiny next to the hits.
    assert np.median(steps) < 0.1 * steps.max()

    assert audio_positions(energies, smooth=1.0) == pytest.approx(grid(len(energies) + 1))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=80),
    st.floats(0, 1),
)
def test_audio_positions_are_monotone_with_exact_ends(energies: list[float], smooth: float) -> None:
    positions = audio_positions(energies, smooth)
    assert len(positions) == len(energies) + 1
    assert positions[0] == 0.0 and positions[-1] == 1.0
    assert all(b > a for a, b in zip(positions, positions[1:], strict=False))
    if smooth == 1.0:
        assert positions == pytest.approx(grid(len(positions)))


def test_audio_positions_refuse_a_smooth_out_of_range() -> None:
    with pytest.raises(ValueError, match="smooth must be between 0 and 1"):
        audio_positions([1.0, 2.0], 1.5)


# ---------------------------------------------------------------- in-betweens


def test_the_schedule_keeps_the_duration_and_every_rendered_frame() -> None:
    from worker.inbetween import schedule

    slots = schedule(24, 12, 24)
    assert len(slots) == 48
    assert [s.a for s in slots if s.weight == 0][:24] == list(range(24))
    assert [s.weight for s in slots[:4]] == [0.0, 0.5, 0.0, 0.5]
    assert len(schedule(10, 12, 30)) == 25 and len(schedule(10, 12, 12)) == 10
    assert all(s.weight == 0 for s in schedule(10, 12, 12))


def test_a_cut_is_crossfaded_not_warped() -> None:
    from worker.inbetween import crossfade, flow_inbetween

    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    b = 255 - a  # nothing in common: a cut
    made, how = flow_inbetween(a, b, 0.25)
    assert how == "crossfade" and np.array_equal(made, crossfade(a, b, 0.25))
    assert not math.isnan(float(made.mean()))


def test_time_settings_never_change_a_frames_key() -> None:
    from core.params import RenderSnapshot
    from core.timeline import frame_keys
    from services import noise_paths

    keyframes = [{"position": 0.0, "prompt": "a city"}, {"position": 1.0, "prompt": "a forest"}]
    base = RenderSnapshot(seed=3, frames=8, keyframes=keyframes)
    timed = RenderSnapshot(
        seed=3, frames=8, keyframes=keyframes, fps=24, audio_offset=2.5, smooth=0.4, soundtrack={"key": "x"}
    )
    assert base.pixels() == timed.pixels()
    plan = noise_paths.plan
    assert frame_keys(base.pixels(), plan(base)) == frame_keys(timed.pixels(), plan(timed))
