"""Confusion detection: a clean ramp raises nothing; each injected defect is flagged where injected only."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.confusion import Flag, FrameScore, Thresholds, detect

N = 24


def ramp(n: int = N, change: float = 1.0) -> list[FrameScore]:
    """A clean one-segment transition: progress i/(n-1), equal changes, a fading into b.

    sim_a goes 0.30 -> 0.15 and sim_b 0.15 -> 0.30, so the end frames' similarity to the other prompt
    is 0.15 and the "neither" floor is 0.15 - 0.02 = 0.13. The midpoint scores about 0.225 on both:
    well above the floor, although below the ends' own-prompt 0.30 (a healthy blend must not be flagged).
    """
    frames = []
    for i in range(n):
        p = i / (n - 1)
        frames.append(
            FrameScore(
                index=i,
                t=p,
                segment=0,
                progress=p,
                change=change if i < n - 1 else None,
                sim_a=0.30 - 0.15 * p,
                sim_b=0.15 + 0.15 * p,
            )
        )
    return frames


def kinds(flags: dict[int, list[Flag]]) -> set[tuple[int, str]]:
    return {(index, flag.kind) for index, found in flags.items() for flag in found}


def edit(frames: list[FrameScore], index: int, **changes: object) -> None:
    frames[index] = replace(frames[index], **changes)  # type: ignore[arg-type]


def test_a_clean_ramp_has_no_flags() -> None:
    assert detect(ramp()) == {}


@given(st.integers(min_value=2, max_value=60), st.floats(min_value=1e-6, max_value=1e3))
def test_any_even_ramp_has_no_flags(n: int, change: float) -> None:
    assert detect(ramp(n, change)) == {}


def test_nothing_to_judge() -> None:
    assert detect([]) == {}
    blank = [FrameScore(i, i / 9, 0, None, None, None, None) for i in range(10)]
    assert detect(blank) == {}


def test_a_jump_is_flagged_on_the_first_frame_of_the_pair() -> None:
    frames = ramp()
    edit(frames, 11, change=10.0)
    # 22 changes of 1 and one of 10: total 32, median 1; 10 > 3 * 1 and 10/32 = 31.25 % >= 25 %
    flags = detect(frames)
    assert kinds(flags) == {(11, "jump")}
    assert flags[11][0].message == "jump: 31 % of the whole change happens between #11 and #12"


def test_a_jump_needs_both_the_ratio_and_the_share() -> None:
    frames = ramp()
    edit(frames, 11, change=5.0)
    # ratio 5 > 3 but share 5 / 27 = 18.5 % < 25 %
    assert detect(frames) == {}
    # three frames, changes [1, 1.5]: share 1.5 / 2.5 = 60 % but median 1.25 and 1.5 < 3 * 1.25
    short = ramp(3)
    edit(short, 1, change=1.5)
    assert detect(short) == {}


def test_a_backwards_step_is_flagged_on_the_frame_that_drops() -> None:
    frames = ramp()
    edit(frames, 10, progress=0.2)
    # frame 9 is at 9/23 = 0.391; 0.391 - 0.2 = 0.191 > 0.1. Frame 11 (0.478) moves forward again.
    flags = detect(frames)
    assert kinds(flags) == {(10, "backwards")}
    assert flags[10][0].message == "goes backwards: progress drops from 0.39 to 0.20"


def test_a_small_wobble_is_not_backwards() -> None:
    frames = ramp()
    edit(frames, 10, progress=9 / 23 - 0.05)  # drops 0.05 < 0.1
    assert detect(frames) == {}


def test_progress_restarts_at_a_segment_boundary() -> None:
    # segment 0: frames 0..11 with progress i/12; segment 1: frames 12..23 with progress (i-12)/11.
    # Frame 12 drops from 11/12 to 0, which is a new segment, not a step back.
    frames = []
    for i in range(N):
        segment, p = (0, i / 12) if i < 12 else (1, (i - 12) / 11)
        sims = {"sim_a": 0.30 - 0.15 * p, "sim_b": 0.15 + 0.15 * p}
        frames.append(FrameScore(i, i / 23, segment, p, 1.0 if i < N - 1 else None, **sims))
    assert detect(frames) == {}
    edit(frames, 5, progress=0.1)  # 4/12 = 0.333 -> 0.1 inside segment 0
    assert kinds(detect(frames)) == {(5, "backwards")}


def test_an_off_prompt_frame_matches_neither() -> None:
    frames = ramp()
    edit(frames, 7, sim_a=0.10, sim_b=0.10)
    # floors: sim_a(last) - 0.02 = 0.13 and sim_b(first) - 0.02 = 0.13; 0.10 is below both
    flags = detect(frames)
    assert kinds(flags) == {(7, "neither")}
    assert flags[7][0].message.startswith("matches neither prompt")


def test_a_frame_low_on_one_prompt_only_is_not_neither() -> None:
    frames = ramp()
    edit(frames, 7, sim_a=0.10, sim_b=0.29)  # a b-looking frame early: odd, but it matches b
    assert detect(frames) == {}


def test_a_plateau_flags_every_frame_of_the_run() -> None:
    frames = ramp()
    for i in range(3, 8):
        edit(frames, i, change=0.01)
    # five small changes join frames 3..8: six frames look alike. Mean change = (18 + 0.05) / 23 = 0.785,
    # limit 0.0785 >= 0.01. Median stays 1, so nothing is a jump.
    flags = detect(frames)
    assert kinds(flags) == {(i, "plateau") for i in range(3, 9)}
    assert {flags[i][0].message for i in range(3, 9)} == {"nothing changes for 6 frames (#3–#8)"}


def test_a_shorter_still_run_is_not_a_plateau() -> None:
    frames = ramp()
    for i in range(3, 7):
        edit(frames, i, change=0.01)  # four small changes: five frames, one short of six
    assert detect(frames) == {}


def test_every_defect_at_once_is_flagged_where_injected_only() -> None:
    frames = ramp()
    for i in range(2, 7):
        edit(frames, i, change=0.01)  # plateau over frames 2..7
    edit(frames, 12, progress=0.3)  # 11/23 = 0.478 -> 0.3: backwards
    edit(frames, 15, sim_a=0.10, sim_b=0.10)  # neither
    edit(frames, 18, change=10.0)  # jump
    # changes: 17 x 1, 5 x 0.01, 1 x 10 -> total 27.05, median 1, mean 1.176 (plateau limit 0.118)
    # jump share 10 / 27.05 = 37 %
    flags = detect(frames)
    expected = {(i, "plateau") for i in range(2, 8)} | {(12, "backwards"), (15, "neither"), (18, "jump")}
    assert kinds(flags) == expected
    assert flags[18][0].message == "jump: 37 % of the whole change happens between #18 and #19"
    assert list(flags) == sorted(flags)


def test_the_input_order_does_not_matter() -> None:
    frames = ramp()
    edit(frames, 11, change=10.0)
    edit(frames, 4, progress=0.0)
    shuffled = frames[:]
    random.Random(3).shuffle(shuffled)
    assert detect(shuffled) == detect(frames)
    assert kinds(detect(frames)) == {(11, "jump"), (4, "backwards")}


def test_missing_values_are_skipped() -> None:
    # a partial render: frames 5..9 not rendered yet, so frame 4's change (to frame 5) is unknown too.
    frames = ramp()
    for i in range(5, 10):
        edit(frames, i, progress=None, change=None, sim_a=None, sim_b=None)
    edit(frames, 4, change=None)
    edit(frames, 14, sim_b=None)
    assert detect(frames) == {}
    # progress is compared with the last frame that has one: 4/23 = 0.174 -> 0.05 at frame 10 is a drop
    edit(frames, 10, progress=0.05)
    assert kinds(detect(frames)) == {(10, "backwards")}


def test_an_unknown_change_ends_a_plateau() -> None:
    frames = ramp()
    for i in range(3, 12):
        edit(frames, i, change=0.01)
    edit(frames, 7, change=None)
    # runs 3..7 and 8..12 are five frames each: neither reaches six
    assert detect(frames) == {}


def test_neither_is_skipped_when_an_end_frame_has_no_scores() -> None:
    frames = ramp()
    edit(frames, 7, sim_a=0.10, sim_b=0.10)
    edit(frames, 0, sim_b=None)  # no baseline for "an a-image's similarity to b"
    assert detect(frames) == {}


def test_thresholds_change_the_verdict() -> None:
    frames = ramp()
    edit(frames, 11, change=5.0)
    # share 5 / 27 = 18.5 %: flagged once the share threshold is lowered to 15 %
    assert kinds(detect(frames, Thresholds(jump_share=0.15))) == {(11, "jump")}


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError):
        detect([*ramp(3), ramp(3)[0]])
    with pytest.raises(ValueError):
        Thresholds(plateau_frames=1)
