"""Studies' pure parts: the seeded triplet sampler and the agreement figures on planted data sets."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from core import agreement
from core.studies import StudyRender, participant_order, sample_triplets

RENDERS = [StudyRender(7, tuple(range(12))), StudyRender(9, tuple(range(5)), {3: 0.9, 4: 0.9})]


def test_the_sampler_gives_the_same_triplets_for_a_seed_and_others_for_another() -> None:
    first = sample_triplets(RENDERS, 30, seed=11)
    assert first == sample_triplets(RENDERS, 30, seed=11)
    assert first != sample_triplets(RENDERS, 30, seed=12)
    assert len(first) == 30
    assert [t.render_id for t in first[:4]] == [7, 9, 7, 9]  # renders in turn
    for triplet in first:
        assert len(set(triplet.frames)) == 3
        frames = RENDERS[0].frames if triplet.render_id == 7 else RENDERS[1].frames
        assert set(triplet.frames) <= set(frames)
    # 12 frames hold 220 triplets: 15 draws never repeat one
    on_seven = [frozenset(t.frames) for t in first if t.render_id == 7]
    assert len(set(on_seven)) == len(on_seven)


def test_the_problems_sampler_leans_toward_frames_in_problems() -> None:
    render = StudyRender(1, tuple(range(20)), {i: 1.0 for i in range(15, 20)})
    uniform = sample_triplets([render], 300, seed=3, sampler="uniform")
    leaning = sample_triplets([render], 300, seed=3, sampler="problems")

    def share(triplets: list) -> float:  # type: ignore[type-arg]
        return sum(f >= 15 for t in triplets for f in t.frames) / (3 * len(triplets))

    assert share(uniform) < 0.3 < 0.42 < share(leaning)  # 5 of 20 frames: 0.25 uniform


def test_renders_too_short_for_a_triplet_are_skipped_and_a_bad_sampler_is_refused() -> None:
    assert sample_triplets([StudyRender(1, (0, 1))], 5, seed=0) == []
    assert sample_triplets(RENDERS, 0, seed=0) == []
    try:
        sample_triplets(RENDERS, 3, seed=0, sampler="weighted")
    except ValueError as exc:
        assert "uniform, problems" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("an unknown sampler was accepted")


def test_each_participant_gets_every_item_once_rates_first_triplets_last() -> None:
    ids = list(range(1, 11))
    kinds = ["triplet"] * 6 + ["rate", "rate", "mark", "mark"]
    one = participant_order(ids, kinds, seed=5, participant_id=1)
    assert sorted(one) == ids and one == participant_order(ids, kinds, seed=5, participant_id=1)
    assert set(one[:2]) == {7, 8} and set(one[2:4]) == {9, 10}
    orders = {tuple(participant_order(ids, kinds, seed=5, participant_id=p)) for p in range(1, 9)}
    assert len(orders) > 1


# ---------------------------------------------------------------- agreement on planted data


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=2, max_size=12, unique=True), st.integers(2, 8))
def test_alpha_is_one_when_everyone_gives_each_render_the_same_rating(truth: list[int], people: int) -> None:
    units = {u: [float(v)] * people for u, v in enumerate(truth)}
    assert agreement.krippendorff_alpha_interval(units) == 1.0


def test_alpha_is_near_zero_for_random_ratings_and_matches_a_worked_example() -> None:
    rng = random.Random(0)
    units = {u: [float(rng.randint(1, 5)) for _ in range(6)] for u in range(400)}
    alpha = agreement.krippendorff_alpha_interval(units)
    assert alpha is not None and abs(alpha) < 0.05
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4-coder example, interval: 0.849.
    example = {
        1: [1, 1, 1], 2: [2, 2, 3, 2], 3: [3, 3, 3, 3], 4: [3, 3, 3, 3], 5: [2, 2, 2, 2], 6: [1, 2, 3, 4],
        7: [4, 4, 4, 4], 8: [1, 1, 2, 1], 9: [2, 2, 2, 2], 10: [5, 5, 5], 11: [1, 1], 12: [3],
    }  # fmt: skip
    value = agreement.krippendorff_alpha_interval({k: [float(x) for x in v] for k, v in example.items()})
    assert value is not None and abs(value - 0.849) < 0.001
    assert agreement.krippendorff_alpha_interval({1: [3.0], 2: [4.0]}) is None
    assert agreement.krippendorff_alpha_interval({1: [3.0, 3.0], 2: [3.0, 3.0]}) is None


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=6, max_size=40), st.integers(2, 9))
def test_split_half_is_one_when_everyone_picks_the_same_frame(truth: list[int], people: int) -> None:
    if len(set(truth)) < 2:  # one position everywhere: chance agreement is total, kappa is undefined
        truth = [*truth, (truth[0] + 1) % 3]
    answers = {t: {p: pick for p in range(people)} for t, pick in enumerate(truth)}
    assert agreement.split_half_consistency(answers, seed=1) == 1.0
    accuracy, judged = agreement.leave_one_out_accuracy(answers)
    assert accuracy == 1.0 and judged == len(truth) * people


def test_split_half_is_near_zero_for_random_picks() -> None:
    rng = random.Random(2)
    answers = {t: {p: rng.randrange(3) for p in range(8)} for t in range(400)}
    value = agreement.split_half_consistency(answers, seed=1, splits=10)
    assert value is not None and abs(value) < 0.06
    accuracy, _ = agreement.leave_one_out_accuracy(answers)
    assert accuracy is not None and abs(accuracy - 1 / 3) < 0.05
    assert agreement.split_half_consistency({1: {"only": 0}}) is None


def test_a_distance_that_sees_like_people_scores_one_and_a_random_one_about_a_third() -> None:
    # Frames on a line at these positions: the odd one is the far one; people pick it.
    rng = random.Random(4)
    where = {i: rng.random() for i in range(60)}
    triplets = [tuple(rng.sample(range(60), 3)) for _ in range(500)]

    def line(a: int, b: int) -> float:
        return abs(where[a] - where[b])

    answers = [
        (t, agreement.odd_one_out(line(t[0], t[1]), line(t[0], t[2]), line(t[1], t[2]))) for t in triplets
    ]
    assert agreement.triplet_accuracy(answers, line) == (1.0, 500)  # type: ignore[arg-type]
    noise = {(a, b): rng.random() for a in range(60) for b in range(60)}
    accuracy, judged = agreement.triplet_accuracy(answers, lambda a, b: noise[(min(a, b), max(a, b))])  # type: ignore[arg-type]
    assert judged == 500 and accuracy is not None and abs(accuracy - 1 / 3) < 0.07
    missing = agreement.triplet_accuracy(answers, lambda a, b: None)  # type: ignore[arg-type]
    assert missing == (None, 0)


def test_odd_one_out_spearman_histogram_and_median() -> None:
    assert agreement.odd_one_out(0.1, 0.9, 0.8) == 2  # 0 and 1 close: 2 is odd
    assert agreement.odd_one_out(0.9, 0.1, 0.8) == 1
    assert agreement.odd_one_out(0.9, 0.8, 0.1) == 0
    assert agreement.spearman([1, 2, 3, 4], [10, 20, 30, 45]) == 1.0
    assert agreement.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert agreement.spearman([1, 2], [1, 2]) is None
    assert agreement.histogram([0.0, 0.04, 0.5, 1.0], bins=10) == [2, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert agreement.median([0.3, 0.1, 0.2]) == 0.2 and agreement.median([]) is None
