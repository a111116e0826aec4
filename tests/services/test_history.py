"""Undo, redo and jumping back as round trips over random edit sequences (hypothesis), SQLite and PostgreSQL.

The property: any sequence of edits (insert, move, edit or delete a keyframe; change a setting or a prompt;
jump back to a version) followed by as many undos gives back the first version's keyframes and settings
exactly (ids included), and as many redos then give back the last version exactly. A second property
interleaves undo and redo with the edits and checks every step against a plain model of two stacks.
"""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.params import HARD_CAPS, RANGES
from services import history
from services.errors import FieldError

WORDS = string.ascii_lowercase + " "
prompts = st.text(alphabet=WORDS, min_size=1, max_size=24).filter(lambda s: s.strip() != "")
positions = st.integers(min_value=1, max_value=999).map(lambda n: n / 1000)


def within(name: str) -> st.SearchStrategy[int]:
    """Integers over the whole range core.params allows for the setting (at the hard caps)."""
    limit = RANGES[name]
    low, high, step = int(limit.low), int(limit.high(HARD_CAPS)), limit.multiple or 1
    return st.integers(-(-low // step), high // step).map(lambda n: n * step)


GUIDANCE = RANGES["guidance_scale"]
SETTINGS: dict[str, st.SearchStrategy[Any]] = {
    "steps": within("steps"),
    "seed": within("seed"),
    "guidance_scale": st.floats(GUIDANCE.low, GUIDANCE.high(HARD_CAPS), allow_nan=False).map(
        lambda g: round(g, 3)
    ),
    "frames": within("frames"),
    "batch_size": within("batch_size"),
    "width": within("width"),
    "scheduler": st.sampled_from(["dpmsolver", "ddim", "euler"]),
    "text_interpolation": st.sampled_from(["lerp", "slerp"]),
}

inserts = st.tuples(st.just("insert"), positions, prompts)
edits = st.one_of(
    inserts,
    st.tuples(st.just("move"), st.integers(0, 9), positions),
    st.tuples(st.just("edit_prompt"), st.integers(0, 9), prompts),
    st.tuples(st.just("delete"), st.integers(0, 9)),
    st.sampled_from(list(SETTINGS)).flatmap(lambda n: st.tuples(st.just("setting"), st.just(n), SETTINGS[n])),
    st.tuples(
        st.just("prompt"),
        st.sampled_from(["start_prompt", "end_prompt", "negative_prompt", "title"]),
        prompts,
    ),
    st.tuples(st.just("revert"), st.integers(1, 60)),
)


def _examples(database: str, sqlite: int, postgres: int) -> int:
    return sqlite if database.startswith("sqlite") else postgres


def _settings(n: int):  # type: ignore[no-untyped-def]
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def _new(db: Any) -> Any:
    from services.schemas import TransitionCreate
    from services.transitions import create_transition

    return create_transition(
        db, TransitionCreate(start_prompt="a city", end_prompt="a forest", frames=12, seed=7, steps=10)
    )


def state(db: Any, transition: Any) -> dict[str, Any]:
    """What the API shows of a transition, minus the version and the clocks."""
    from services import presenters

    db.expire_all()
    out = presenters.transition_out(db, transition, None)
    return out.model_dump(exclude={"version", "updated_at", "created_at", "latest_render", "warnings"})


def apply_edit(db: Any, transition: Any, edit: tuple[Any, ...]) -> bool:
    """Make one edit through the services; False when it was refused (e.g. a position taken)."""
    from services import transitions as services
    from services.schemas import KeyframeCreate, KeyframeUpdate, TransitionUpdate

    db.expire_all()
    before = transition.version
    keyframes = list(transition.keyframes)
    middle = [k for k in keyframes if not (k.is_start or k.is_end)]
    kind = edit[0]
    try:
        if kind == "insert":
            services.add_keyframe(db, transition, KeyframeCreate(position=edit[1], prompt=edit[2]))
        elif kind == "move":
            if not middle:
                return False
            services.update_keyframe(db, middle[edit[1] % len(middle)], KeyframeUpdate(position=edit[2]))
        elif kind == "edit_prompt":
            services.update_keyframe(db, keyframes[edit[1] % len(keyframes)], KeyframeUpdate(prompt=edit[2]))
        elif kind == "delete":
            if not middle:
                return False
            services.delete_keyframe(db, middle[edit[1] % len(middle)])
        elif kind in ("setting", "prompt"):
            values = {edit[1]: edit[2]}
            if edit[1] == "width":
                values["height"] = edit[2]
            services.update_transition(db, transition, TransitionUpdate(**values))
        elif kind == "revert":
            history.revert(db, transition, 1 + (edit[1] - 1) % transition.version)
    except FieldError:
        db.rollback()
        return False
    db.expire_all()
    return transition.version > before


def test_any_edits_then_as_many_undos_give_back_the_first_version_and_redos_the_last(database: str) -> None:
    from infra.db import new_session

    @_settings(_examples(database, sqlite=60, postgres=20))
    # A few inserts first, so moves and deletes usually find a keyframe to act on.
    @given(
        sequence=st.builds(lambda a, b: a + b, st.lists(inserts, max_size=3), st.lists(edits, max_size=12))
    )
    def run(sequence: list[tuple[Any, ...]]) -> None:
        with new_session() as db:
            transition = _new(db)
            first = state(db, transition)
            made = sum(apply_edit(db, transition, e) for e in sequence)
            last, version = state(db, transition), transition.version
            for step in range(made):
                history.undo(db, transition)
                db.expire_all()
                assert transition.version == version + step + 1  # an undo is an edit: it bumps the version
            assert state(db, transition) == first
            with pytest.raises(FieldError, match="nothing to undo"):
                history.undo(db, transition)
            for _ in range(made):
                history.redo(db, transition)
            assert state(db, transition) == last
            with pytest.raises(FieldError, match="nothing to redo"):
                history.redo(db, transition)
            versions = [e.version for e in history.entries(db, transition)]
            assert versions == list(range(transition.version, 0, -1))  # every version once, none lost

    run()


def test_undo_and_redo_interleaved_with_edits_follow_two_stacks(database: str) -> None:
    from infra.db import new_session

    moves = st.lists(st.one_of(edits, st.just(("undo",)), st.just(("redo",))), min_size=1, max_size=16)
    steps = st.builds(lambda a, b: a + b, st.lists(inserts, max_size=2), moves)

    @_settings(_examples(database, sqlite=50, postgres=15))
    @given(sequence=steps)
    def run(sequence: list[tuple[Any, ...]]) -> None:
        with new_session() as db:
            transition = _new(db)
            done, undone = [state(db, transition)], []  # the model: states reachable by undo and by redo
            for step in sequence:
                if step[0] == "undo":
                    if len(done) == 1:
                        with pytest.raises(FieldError):
                            history.undo(db, transition)
                        continue
                    history.undo(db, transition)
                    undone.append(done.pop())
                elif step[0] == "redo":
                    if not undone:
                        with pytest.raises(FieldError):
                            history.redo(db, transition)
                        continue
                    history.redo(db, transition)
                    done.append(undone.pop())
                elif apply_edit(db, transition, step):
                    done.append(state(db, transition))
                    undone.clear()
                assert state(db, transition) == done[-1]

    run()


def test_undoing_a_delete_brings_the_keyframe_back_under_its_own_id(database: str) -> None:
    from infra.db import new_session
    from services import transitions as services
    from services.schemas import KeyframeCreate

    with new_session() as db:
        transition = _new(db)
        kept = services.add_keyframe(db, transition, KeyframeCreate(position=0.5, prompt="a garden"))
        kept_id = kept.id
        services.delete_keyframe(db, kept)
        # The deleted keyframe had the highest id: SQLite would hand it out again without AUTOINCREMENT.
        other = services.add_keyframe(db, _new(db), KeyframeCreate(position=0.3, prompt="a harbour"))
        assert other.id != kept_id
        history.undo(db, transition)
        db.expire_all()
        assert [(k.id, k.position, k.prompt) for k in transition.keyframes if k.position == 0.5] == [
            (kept_id, 0.5, "a garden")
        ]


def test_jump_back_to_any_version_and_undo_the_jump(database: str) -> None:
    from infra.db import new_session
    from services import transitions as services
    from services.schemas import KeyframeCreate, TransitionUpdate

    with new_session() as db:
        transition = _new(db)
        services.add_keyframe(db, transition, KeyframeCreate(position=0.4, prompt="a garden"))
        at_2 = state(db, transition)
        services.update_transition(db, transition, TransitionUpdate(steps=30, end_prompt="a desert"))
        services.add_keyframe(db, transition, KeyframeCreate(position=0.7, prompt="dunes"))
        at_4 = state(db, transition)
        edit = history.revert(db, transition, 2)
        assert edit is not None and edit.kind == "revert" and edit.version == 5
        assert state(db, transition) == at_2
        assert history.revert(db, transition, 5) is None  # already there: nothing recorded
        history.undo(db, transition)
        assert state(db, transition) == at_4
        with pytest.raises(FieldError, match="between 1 and 6"):
            history.revert(db, transition, 9)


def test_the_history_says_what_changed_who_and_which_edits_are_undone(database: str) -> None:
    from infra.db import new_session
    from services import transitions as services
    from services.schemas import KeyframeCreate, KeyframeUpdate, TransitionUpdate

    with new_session() as db:
        transition = _new(db)
        keyframe = services.add_keyframe(db, transition, KeyframeCreate(position=0.4, prompt="a garden"))
        services.update_keyframe(db, keyframe, KeyframeUpdate(position=0.6))
        services.update_transition(
            db, transition, TransitionUpdate(steps=30), actor=history.Actor(link_id=None)
        )
        history.undo(db, transition)
        entries = history.entries(db, transition)
        summaries = [e.summary for e in entries]
        assert summaries == [
            "undo v4: steps 10 → 30",
            "steps 10 → 30",
            "keyframe at 0.4 moved to 0.6",
            "keyframe at 0.4 added: “a garden”",
            "created",
        ]
        assert [e.undone for e in entries] == [False, True, False, False, False]
        assert {e.who for e in entries} == {"owner"}
        panel = history.panel(db, transition)
        assert panel.can_undo and panel.can_redo
        assert panel.undo_summary == "v3: keyframe at 0.4 moved to 0.6"
        assert panel.redo_summary == "v4: steps 10 → 30"


def test_a_no_op_write_records_nothing(database: str) -> None:
    from infra.db import new_session
    from services import transitions as services
    from services.schemas import TransitionUpdate

    with new_session() as db:
        transition = _new(db)
        services.update_transition(db, transition, TransitionUpdate(steps=10, title=transition.title))
        assert transition.version == 1
        assert len(history.entries(db, transition)) == 1


# ---------------------------------------------------------------- pure parts


def test_diff_and_apply_are_inverse_on_documents() -> None:
    old = {
        "transition": {"steps": 10, "title": "a"},
        "keyframes": {"1": {"position": 0.0, "prompt": "x"}, "2": {"position": 0.5, "prompt": "y"}},
    }
    new = {
        "transition": {"steps": 12, "title": "a"},
        "keyframes": {"1": {"position": 0.0, "prompt": "z"}, "3": {"position": 0.7, "prompt": "w"}},
    }
    before, after = history.diff(old, new)
    assert before == {
        "transition": {"steps": 10},
        "keyframes": {"1": {"prompt": "x"}, "2": {"position": 0.5, "prompt": "y"}, "3": None},
    }
    assert after["keyframes"]["2"] is None and after["keyframes"]["3"] == {"position": 0.7, "prompt": "w"}
    assert history.apply_to_doc(old, after) == new
    assert history.apply_to_doc(new, before) == old
    assert history.diff(old, old) == ({}, {})


def test_sqlite_keyframe_ids_are_never_reused_after_every_migration(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from app.cli import migrate
    from infra.db import engine_for
    from tests.support.isolation import configure, reset_caches

    configure(monkeypatch, tmp_path)
    url = f"sqlite:///{tmp_path / 'segue.db'}"
    migrate(url)
    with engine_for(url).connect() as conn:
        ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'keyframes'").scalar()
    reset_caches()
    assert "AUTOINCREMENT" in ddl, "a later migration rebuilt keyframes without sqlite_autoincrement"
