"""Transition metrics against hand-computed examples, plus properties that hold for any input."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from core.metrics import (
    PROGRESS_EPS,
    Summary,
    adjacent_distances,
    consistency,
    cosine_distance,
    cosine_similarity,
    crossing_t,
    gini,
    interp_score,
    istd,
    max_jump,
    monotonicity,
    pdv,
    ppl,
    progress,
    segment_progress,
    smoothness,
    summarize,
)

distance = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
similarity = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)


# --- cosine and adjacent distances -----------------------------------------------------------------


def test_cosine_of_orthogonal_parallel_and_opposite_vectors() -> None:
    assert cosine_similarity([1.0, 0.0], [0.0, 2.0]) == 0.0
    assert cosine_similarity([1.0, 0.0], [3.0, 0.0]) == 1.0
    assert cosine_distance([1.0, 0.0], [-1.0, 0.0]) == 2.0
    # [1, 0] . [1, 1] = 1, |[1, 1]| = sqrt(2)  ->  cos = 1 / sqrt(2)
    assert cosine_similarity([1.0, 0.0], [1.0, 1.0]) == pytest.approx(1 / math.sqrt(2))


def test_cosine_rejects_zero_vectors_and_length_mismatch() -> None:
    with pytest.raises(ValueError):
        cosine_similarity([0.0, 0.0], [1.0, 0.0])
    with pytest.raises(ValueError):
        cosine_similarity([1.0, 0.0], [1.0, 0.0, 0.0])


def test_adjacent_cosine_distances() -> None:
    # Each step turns the vector by 45 degrees: distance 1 - cos 45 = 1 - 1/sqrt(2) per pair.
    got = adjacent_distances([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    assert got == pytest.approx([1 - 1 / math.sqrt(2)] * 2)


def test_adjacent_l2_distances() -> None:
    # (0,0) -> (3,4) is the 3-4-5 triangle; (3,4) -> (3,4) is 0.
    assert adjacent_distances([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]], metric="l2") == [5.0, 0.0]
    assert adjacent_distances([[1.0]], metric="l2") == []


def test_adjacent_distances_rejects_unknown_metric() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        adjacent_distances([[1.0], [2.0]], metric="manhattan")


# --- gini and smoothness --------------------------------------------------------------------------


def test_gini_of_equal_values_is_zero() -> None:
    assert gini([1.0, 1.0, 1.0]) == 0.0


def test_gini_of_one_holding_everything() -> None:
    # Ordered pairs of [0, 0, 1] with |x_i - x_j| = 1: four of them, sum 4.
    # 2 n^2 mean = 2 * 9 * (1/3) = 6  ->  G = 4 / 6 = 2/3 (the population maximum (n-1)/n).
    assert gini([0.0, 0.0, 1.0]) == pytest.approx(2 / 3)
    assert gini([1.0, 0.0, 0.0]) == pytest.approx(2 / 3)


def test_gini_of_a_ramp() -> None:
    # [1, 2, 3, 4]: sum over i<j of (x_j - x_i) = (1+2+3) + (1+2) + 1 = 10; n * sum = 4 * 10 = 40.
    assert gini([4.0, 1.0, 3.0, 2.0]) == pytest.approx(0.25)
    assert smoothness([1.0, 2.0, 3.0, 4.0]) == pytest.approx(0.75)


def test_gini_of_nothing_or_zeros_is_zero_and_negatives_are_rejected() -> None:
    assert gini([]) == 0.0
    assert gini([0.0, 0.0]) == 0.0
    assert smoothness([]) == 1.0
    with pytest.raises(ValueError):
        gini([1.0, -0.5])


@given(st.lists(distance, max_size=40))
def test_smoothness_lies_in_0_1(values: list[float]) -> None:
    s = smoothness(values)
    assert 0.0 <= s <= 1.0
    if values:
        # the population Gini never exceeds (n-1)/n, so smoothness never drops below 1/n
        assert s >= 1 / len(values) - 1e-9


@given(distance, st.integers(min_value=1, max_value=40))
def test_smoothness_of_equal_distances_is_exactly_one(value: float, n: int) -> None:
    assert smoothness([value] * n) == 1.0


@given(st.lists(st.floats(min_value=1e-3, max_value=1e3), min_size=1, max_size=30), st.floats(0.5, 100.0))
def test_gini_ignores_scale(values: list[float], factor: float) -> None:
    assert gini([v * factor for v in values]) == pytest.approx(gini(values), abs=1e-9)


# --- path length, variance, mean, max, ISTD --------------------------------------------------------


def test_ppl_pdv_mean_and_max() -> None:
    d = [1.0, 2.0, 3.0, 4.0]
    assert ppl(d) == 10.0  # 1 + 2 + 3 + 4
    # mean 2.5; squared deviations 2.25, 0.25, 0.25, 2.25 -> 5; population variance 5 / 4
    assert pdv(d) == pytest.approx(1.25)
    assert consistency(d) == 2.5
    assert max_jump(d) == 4.0


def test_empty_distances_give_zeros() -> None:
    assert (ppl([]), pdv([]), consistency([]), max_jump([]), istd([])) == (0.0, 0.0, 0.0, 0.0, 0.0)


def test_istd_is_the_population_standard_deviation() -> None:
    # mean 5; squared deviations 9+1+1+1+0+0+4+16 = 32; 32 / 8 = 4; sqrt 4 = 2 (a sample std would be 2.14)
    assert istd([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) == pytest.approx(2.0)


# --- progress --------------------------------------------------------------------------------------


def test_segment_progress_rescales_to_the_ends() -> None:
    # d = s_b - s_a = [-0.2, -0.05, 0.1]; span = 0.3; middle: (-0.05 + 0.2) / 0.3 = 0.5
    p = segment_progress([0.30, 0.25, 0.20], [0.10, 0.20, 0.30])
    assert p == pytest.approx([0.0, 0.5, 1.0])
    assert progress([0.30, 0.25, 0.20], [0.10, 0.20, 0.30]) == p


def test_segment_progress_is_not_clamped_when_a_frame_overshoots() -> None:
    # d = [-0.2, 0.2, 0.1]; middle: (0.2 + 0.2) / 0.3 = 4/3
    p = segment_progress([0.3, 0.1, 0.2], [0.1, 0.3, 0.3])
    assert p == pytest.approx([0.0, 4 / 3, 1.0])


def test_segment_progress_falls_back_when_the_ends_are_indistinguishable() -> None:
    # d = [0, 0.2, 0] -> span 0 -> 0.5 + d/2 = [0.5, 0.6, 0.5]
    assert segment_progress([0.3, 0.3, 0.3], [0.3, 0.5, 0.3]) == pytest.approx([0.5, 0.6, 0.5])
    # d = [0, 2, 0] -> 0.5 + 1 = 1.5, clamped to 1 in the fallback only
    assert segment_progress([0.0, -1.0, 0.0], [0.0, 1.0, 0.0]) == [0.5, 1.0, 0.5]


def test_segment_progress_edge_cases() -> None:
    assert segment_progress([], []) == []
    with pytest.raises(ValueError):
        segment_progress([0.1, 0.2], [0.3])


@given(st.lists(st.tuples(similarity, similarity), min_size=2, max_size=30))
def test_segment_progress_ends_are_exactly_0_and_1(pairs: list[tuple[float, float]]) -> None:
    sim_a = [a for a, _ in pairs]
    sim_b = [b for _, b in pairs]
    assume(abs((sim_b[-1] - sim_a[-1]) - (sim_b[0] - sim_a[0])) > PROGRESS_EPS)
    p = segment_progress(sim_a, sim_b)
    assert p[0] == 0.0
    assert p[-1] == 1.0
    assert len(p) == len(pairs)


# --- crossing --------------------------------------------------------------------------------------


def test_crossing_is_interpolated_between_the_frames_around_it() -> None:
    # 0.4 at t=0.5, 0.9 at t=1: 0.5 is 0.1/0.5 = 1/5 of the way -> t = 0.5 + 0.2 * 0.5 = 0.6
    assert crossing_t([0.0, 0.5, 1.0], [0.0, 0.4, 0.9]) == pytest.approx(0.6)


def test_crossing_is_the_first_one() -> None:
    # first crossing between t=0 (p 0) and t=1/3 (p 0.6): 0.5/0.6 = 5/6 of 1/3 -> 5/18
    assert crossing_t([0.0, 1 / 3, 2 / 3, 1.0], [0.0, 0.6, 0.3, 1.0]) == pytest.approx(5 / 18)


def test_crossing_exactly_on_a_frame_and_never() -> None:
    assert crossing_t([0.0, 0.5, 1.0], [0.0, 0.5, 1.0]) == pytest.approx(0.5)
    assert crossing_t([0.0, 0.5, 1.0], [0.0, 0.2, 0.4]) is None
    assert crossing_t([], []) is None
    assert crossing_t([0.2, 0.4], [0.7, 0.9]) == 0.2  # already past half-way at the first frame


# --- monotonicity ---------------------------------------------------------------------------------


def test_spearman_of_increasing_and_reversed_sequences() -> None:
    ts = [0.0, 0.25, 0.5, 0.75, 1.0]
    assert monotonicity(ts, [0.0, 0.1, 0.5, 0.7, 1.0]) == pytest.approx(1.0)
    assert monotonicity(ts, [1.0, 0.7, 0.5, 0.1, 0.0]) == pytest.approx(-1.0)


def test_spearman_of_one_swap() -> None:
    # ranks of progress [1, 3, 2, 4]; sum d^2 = 0+1+1+0 = 2; rho = 1 - 6*2 / (4*(16-1)) = 1 - 12/60 = 0.8
    assert monotonicity([0.0, 1.0, 2.0, 3.0], [0.1, 0.3, 0.2, 0.4]) == pytest.approx(0.8)


def test_spearman_uses_average_ranks_for_ties() -> None:
    # ranks t [1,2,3,4]; ranks p [1, 2.5, 2.5, 4]; deviations from 2.5: t [-1.5,-.5,.5,1.5], p [-1.5,0,0,1.5]
    # cov = 2.25 + 2.25 = 4.5; var_t = 5; var_p = 4.5; rho = 4.5 / sqrt(5 * 4.5) = sqrt(0.9)
    assert monotonicity([0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 1.0, 2.0]) == pytest.approx(math.sqrt(0.9))


def test_spearman_of_degenerate_inputs() -> None:
    assert monotonicity([], []) == 1.0
    assert monotonicity([0.0], [0.3]) == 1.0
    assert monotonicity([0.0, 0.5, 1.0], [0.4, 0.4, 0.4]) == 0.0
    with pytest.raises(ValueError):
        monotonicity([0.0, 1.0], [0.0])


@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=2, max_size=25, unique=True))
def test_spearman_flips_sign_when_progress_is_mirrored(values: list[float]) -> None:
    ts = [i / (len(values) - 1) for i in range(len(values))]
    rho = monotonicity(ts, values)
    assert -1.0 <= rho <= 1.0
    assert monotonicity(ts, [-v for v in values]) == pytest.approx(-rho)


# --- InterpScore and summary ----------------------------------------------------------------------


def test_interp_score_clips_negative_cosines_to_zero() -> None:
    # 100 * [0.3, -0.2, 0.25] clipped at 0 -> [30, 0, 25]; mean 55/3 (an unclipped mean would be 35/3)
    assert interp_score([0.3, -0.2, 0.25]) == pytest.approx(55 / 3)
    assert interp_score([]) == 0.0


def test_summarize_collects_every_metric() -> None:
    # distances [0.1, 0.3]: gini = (0.3 - 0.1) / (2 * 0.4) = 0.25; mean 0.2; deviations +-0.1 -> variance 0.01
    # progress 0.4 at t=0.5 and 1.0 at t=1: crossing at 0.5 + (0.1 / 0.6) * 0.5 = 7/12
    got = summarize([0.0, 0.5, 1.0], [0.1, 0.3], [0.0, 0.4, 1.0])
    assert isinstance(got, Summary)
    assert got.smoothness == pytest.approx(0.75)
    assert got.max_jump == pytest.approx(0.3)
    assert got.mean_jump == pytest.approx(0.2)
    assert got.ppl == pytest.approx(0.4)
    assert got.pdv == pytest.approx(0.01)
    assert got.crossing_t == pytest.approx(7 / 12)
    assert got.monotonicity == pytest.approx(1.0)
