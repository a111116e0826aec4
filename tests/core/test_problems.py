"""Flags grouped into problems (core/problems.py), from synthetic score sequences with known faults."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import confusion, problems
from core.scores import FrameShape


def shapes(changes: list[float | None], progress: list[float | None] | None = None) -> list[FrameShape]:
    """Frames on a uniform grid, one segment, with the given changes (and progress), flagged by the map's
    own rules (core.confusion), as the web app does."""
    n = len(changes)
    progress = progress or [i / (n - 1) for i in range(n)]
    bare = [confusion.FrameScore(i, i / (n - 1), 0, progress[i], changes[i], None, None) for i in range(n)]
    flags = confusion.detect(bare)
    return [
        FrameShape(
            index=f.index,
            t=f.t,
            segment=0,
            progress=f.progress,
            change=f.change,
            sim_a=None,
            sim_b=None,
            flags=flags.get(f.index, []),
        )
        for f in bare
    ]


def test_a_jump_a_plateau_and_a_backwards_stretch_give_exactly_those_problems_in_order() -> None:
    # 16 frames: frames 0-6 barely change (a plateau at the start), a jump between #9 and #10 carrying most
    # of the path, and progress that drops at #12.
    changes: list[float | None] = [0.001] * 6 + [0.05, 0.05, 0.05, 0.9, 0.05, 0.05, 0.05, 0.05, 0.05, None]
    progress: list[float | None] = [0.0, 0, 0, 0, 0, 0, 0.05, 0.1, 0.15, 0.2, 0.8, 0.85, 0.5, 0.9, 0.95, 1.0]
    found = problems.group(shapes(changes, progress))

    assert [p.kind for p in found] == ["jump", "backwards", "plateau"]
    jump, backwards, plateau = found
    assert jump.id == "jump-9-10" and jump.frames == (9, 10)
    assert jump.t == pytest.approx((9 / 15 + 10 / 15) / 2)  # the midpoint of the pair, not #9's t
    assert jump.severity == pytest.approx(0.9 / sum(c for c in changes if c is not None))
    assert backwards.frames == (12, 12) and backwards.severity == pytest.approx(0.35)
    assert plateau.frames == (0, 6)
    # A plateau touching the start is a hold: it ranks below the faults in the middle
    assert plateau.severity == pytest.approx(7 / 16 * problems.RUN_WEIGHT * problems.ENDPOINT_WEIGHT)
    assert [p.severity for p in found] == sorted((p.severity for p in found), reverse=True)


def test_holds_at_both_ends_are_two_problems_not_sixteen_rows() -> None:
    # The new user's 24 frames: eight still frames at each end and one jump in the middle.
    changes: list[float | None] = [0.001] * 7 + [0.05] * 4 + [0.8] + [0.05] * 4 + [0.001] * 7 + [None]
    found = problems.group(shapes(changes))
    flagged = sum(1 for f in shapes(changes) if f.flags)
    assert flagged >= 16  # the map flags every frame of both holds ...
    assert [p.kind for p in found] == ["jump", "plateau", "plateau"]  # ... the list shows three problems
    assert found[0].frames == (11, 12)
    assert {p.frames for p in found[1:]} == {(0, 7), (16, 23)}


def test_a_calm_transition_has_no_problems() -> None:
    assert problems.group(shapes([0.1] * 11 + [None])) == []
    assert problems.worst([]) == 0.0


def test_a_run_in_the_middle_outranks_the_same_run_at_an_end() -> None:
    middle = shapes([0.1] * 5 + [0.001] * 6 + [0.1] * 5 + [None])
    end = shapes([0.001] * 6 + [0.1] * 10 + [None])
    (p_middle,) = [p for p in problems.group(middle) if p.kind == "plateau"]
    (p_end,) = [p for p in problems.group(end) if p.kind == "plateau"]
    assert p_middle.frames[1] - p_middle.frames[0] == p_end.frames[1] - p_end.frames[0]
    assert p_middle.severity == pytest.approx(p_end.severity / problems.ENDPOINT_WEIGHT)


@given(st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=2, max_size=40))
def test_problems_are_ranked_bounded_and_inside_the_timeline(changes: list[float | None]) -> None:
    frames = shapes([*changes[:-1], None])
    found = problems.group(frames)
    assert [p.severity for p in found] == sorted((p.severity for p in found), reverse=True)
    for p in found:
        assert 0.0 <= p.severity <= 1.0
        assert 0.0 <= p.t <= 1.0
        assert p.frames[0] <= p.frames[1]
        assert p.t_range[0] <= p.t <= p.t_range[1]
    assert len({p.id for p in found}) == len(found)
