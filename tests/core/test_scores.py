"""A render's shape from stored scores: change, progress and flags land on the right frames."""

from __future__ import annotations

import math

import pytest

from core.scores import FrameRef, StoredScore, distance, render_shape, ssim


def arc(angles: list[float]) -> dict[str, StoredScore]:
    return {f"k{i}": StoredScore([math.cos(a), math.sin(a), 0.0]) for i, a in enumerate(angles)}


def one_segment(n: int) -> list[FrameRef]:
    return [FrameRef(i, i / (n - 1), 0, i / (n - 1), f"k{i}") for i in range(n)]


def test_an_even_walk_has_a_rising_progress_and_no_flags() -> None:
    shape = render_shape(one_segment(9), arc([i * 0.1 for i in range(9)]), "unet")
    progress = [f.progress for f in shape.frames]
    assert progress[0] == 0.0 and progress[-1] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(progress, progress[1:], strict=False))
    assert all(not f.flags for f in shape.frames)
    assert shape.summary is not None and shape.summary.smoothness > 0.95
    assert shape.summary.crossing_t == pytest.approx(0.5, abs=0.02)


def test_a_jump_is_flagged_on_the_frame_before_it_and_moves_the_crossing() -> None:
    angles = [0, 0.05, 0.1, 0.15, 0.2, 1.2, 1.25, 1.3, 1.35]
    shape = render_shape(one_segment(9), arc(angles), "unet")
    flagged = {f.index: [fl.kind for fl in f.flags] for f in shape.frames if f.flags}
    assert flagged == {4: ["jump"]}
    assert "between #4 and #5" in shape.frames[4].flags[0].message
    assert shape.frames[4].change == pytest.approx(1 - math.cos(1.0))
    assert shape.summary is not None and 0.5 < shape.summary.crossing_t < 0.625


def test_text_aware_progress_uses_the_prompt_similarities() -> None:
    frames = one_segment(5)
    # Frame 2 looks less like a than the end frame does and less like b than the start frame does.
    sims = [(0.9, 0.1), (0.8, 0.2), (0.05, 0.05), (0.3, 0.7), (0.1, 0.9)]
    scores = {f"k{i}": StoredScore([1.0, float(i), 0.0], a, b) for i, (a, b) in enumerate(sims)}
    shape = render_shape(frames, scores, "clip")
    assert [f.sim_a for f in shape.frames] == [a for a, _ in sims]
    d = [b - a for a, b in sims]  # progress is (d - d0) / (d_last - d0)
    assert [f.progress for f in shape.frames] == pytest.approx([(x - d[0]) / (d[-1] - d[0]) for x in d])
    assert [fl.kind for fl in shape.frames[2].flags] == ["neither"]


def test_frames_not_scored_yet_are_skipped_not_errors() -> None:
    scores = arc([i * 0.1 for i in range(9)])
    for missing in ("k3", "k4"):
        del scores[missing]
    shape = render_shape(one_segment(9), scores, "unet")
    assert shape.scored == 7
    assert shape.frames[3].progress is None and shape.frames[2].change is None
    assert shape.frames[1].progress is not None
    del scores["k8"]  # without the end keyframe's frame there is nothing to measure progress against yet
    assert all(f.progress is None for f in render_shape(one_segment(9), scores, "unet").frames)


def test_image_scorers_normalise_each_segment_by_its_keyframe_frames() -> None:
    # Two segments of 4 frames; frame 4 sits on the inner keyframe (local t 0 of segment 1).
    frames = [FrameRef(i, i / 8, 0 if i < 4 else 1, (i % 4) / 4, f"k{i}") for i in range(9)]
    shape = render_shape(frames, arc([i * 0.2 for i in range(9)]), "unet")
    progress = [f.progress for f in shape.frames]
    assert progress[0] == 0.0 and progress[4] == 0.0 and progress[8] == pytest.approx(1.0)
    assert progress[3] == pytest.approx(0.75, abs=0.05)


def test_ssim_distance() -> None:
    flat = [0.5] * 64
    ramp = [i / 63 for i in range(64)]
    assert ssim(ramp, ramp) == pytest.approx(1.0)
    assert distance("ssim", ramp, ramp) == pytest.approx(0.0, abs=1e-9)
    assert distance("ssim", ramp, [1 - x for x in ramp]) > 1.0  # anti-correlated: SSIM < 0
    assert 0 < distance("ssim", flat, ramp) < 1
    with pytest.raises(ValueError):
        ssim([], [])


def test_noise_std_of_each_path() -> None:
    from core.scores import noise_std

    assert noise_std("linear", 0.5, True) == pytest.approx(math.sqrt(0.5))  # 0.707: the blurred midpoint
    assert noise_std("linear", 0.0, True) == noise_std("linear", 1.0, True) == 1.0
    assert noise_std("slerp", 0.5, True) == noise_std("normalized", 0.5, True) == 1.0
    assert noise_std("linear", 0.5, False) == 1.0  # one seed: no mixing


def test_pixel_istd_and_interp_score_by_hand() -> None:
    from core.scores import pixel_istd, transition_interp_score

    # Three flat 4-pixel thumbnails: adjacent RMS distances 0.1 and 0.3 (x 255) -> std 0.1 x 255.
    thumbs = [[0.0] * 4, [0.1] * 4, [0.4] * 4]
    assert pixel_istd(thumbs) == pytest.approx(25.5)
    assert pixel_istd(thumbs[:2]) is None
    # Nearer prompt per frame: 0.3, 0.25, and a frame pointing away counts 0 -> mean (30 + 25 + 0) / 3.
    sims = [(0.3, 0.1), (0.2, 0.25), (-0.1, -0.2), (None, 0.5)]
    assert transition_interp_score(sims) == pytest.approx(55 / 3)
