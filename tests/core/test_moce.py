"""MoCE's switch-step search: converges in about log2(steps) probes and stops at the threshold."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.moce import Probe, clip_score, concept_score, max_probes, search_switch_step
from core.params import HARD_CAPS, RANGES


@given(
    st.integers(min_value=int(RANGES["steps"].low), max_value=int(RANGES["steps"].high(HARD_CAPS))), st.data()
)
def test_finds_the_crossing_of_a_monotone_disparity(steps: int, data) -> None:  # type: ignore[no-untyped-def]
    crossing = data.draw(st.integers(min_value=0, max_value=steps))
    calls: list[int] = []

    def disparity(n: int) -> float:  # synthetic: exactly 0 at the crossing, +-1 per step away
        calls.append(n)
        return float(n - crossing)

    found = search_switch_step(disparity, steps, threshold=0.5)
    assert found.step == crossing and found.converged
    assert len(calls) <= max_probes(steps) == math.floor(math.log2(steps + 1)) + 1
    assert max_probes(25) == math.ceil(math.log2(25)) == 5  # the default 25 steps: 5 probes
    assert [p.step for p in found.trace] == calls and len(set(calls)) == len(calls)


def test_stops_as_soon_as_the_disparity_is_under_the_threshold() -> None:
    calls: list[int] = []

    def disparity(n: int) -> float:
        calls.append(n)
        return n - 10.2

    found = search_switch_step(disparity, 25, threshold=0.6, budget=10)
    assert calls == [12, 5, 8, 10] and found.step == 10 and found.converged


def test_a_spent_budget_keeps_the_best_probe() -> None:
    found = search_switch_step(
        lambda n: Probe(n, n * 2.0 - 7.3, {"thumb": f"/x/{n}.png"}), 50, 0.01, budget=3
    )
    assert len(found.trace) == 3 and not found.converged
    assert found.step == min(found.trace, key=lambda p: abs(p.disparity)).step
    assert found.trace[0].extra == {"thumb": "/x/25.png"}


def test_concept_score_takes_the_best_of_concept_and_description() -> None:
    assert clip_score(0.31) == pytest.approx(31.0) and clip_score(-0.2) == 0.0
    assert concept_score([0.21, 0.28]) == pytest.approx(28.0)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="steps must be at least 1"):
        search_switch_step(lambda n: 0.0, 0, 0.5)
    with pytest.raises(ValueError, match="budget"):
        search_switch_step(lambda n: 0.0, 10, 0.5, budget=0)
