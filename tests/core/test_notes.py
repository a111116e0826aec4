"""Review notes without a server: which roles may edit or comment, and the checks on a note's fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.deps import Access, AccessDenied
from services.notes import MAX_TEXT, NoteCreate, NoteUpdate
from services.projects import ProjectNote


@pytest.mark.parametrize(
    ("role", "edit", "comment"),
    [
        ("owner", True, True),
        ("admin", True, True),
        ("edit", True, True),
        ("comment", False, True),
        ("view", False, False),
    ],  # fmt: skip
)
def test_only_editor_roles_edit_and_comment_links_only_comment(role: str, edit: bool, comment: bool) -> None:
    access = Access(role=role, link_id=None if role in ("owner", "admin") else 1, transition_id=None)  # type: ignore[arg-type]
    assert (access.can_edit, access.can_comment) == (edit, comment)
    for write, commenting, allowed in ((True, False, edit), (True, True, comment), (False, False, True)):
        if allowed:
            access.require(5, write=write, comment=commenting)
        else:
            with pytest.raises(AccessDenied) as refused:
                access.require(5, write=write, comment=commenting)
            assert refused.value.status == 403 and f"{role} link" in refused.value.message


def test_a_role_nobody_knows_edits_nothing() -> None:
    assert not Access(role="reviewer", link_id=1).can_edit  # type: ignore[arg-type]


def test_note_fields_are_checked_naming_the_field_and_range() -> None:
    assert NoteCreate(t=0, t_end=1, text=" x ", author="  Ada   Lovelace ").model_dump() == {
        "t": 0.0, "t_end": 1.0, "text": "x", "author": "Ada Lovelace"
    }  # fmt: skip
    for body, field, words in (
        ({"t": 1.01, "text": "x"}, "t", "between 0 and 1"),
        ({"t": float("inf"), "text": "x"}, "t", "between 0 and 1"),
        ({"t": 0.5, "text": "\n "}, "text", f"1 to {MAX_TEXT} characters"),
        ({"t": 0.5, "text": "x" * (MAX_TEXT + 1)}, "text", f"at most {MAX_TEXT}"),
    ):
        with pytest.raises(ValidationError) as error:
            NoteCreate.model_validate(body)
        first = error.value.errors()[0]
        assert first["loc"] == (field,) and words in first["msg"]
    assert NoteUpdate(t_end=None).model_fields_set == {"t_end"}  # null: back to a single moment


def test_a_project_note_refuses_a_backwards_range() -> None:
    with pytest.raises(ValidationError, match="t_end must be at least t"):
        ProjectNote(t=0.5, t_end=0.2, text="x")
    assert ProjectNote(t=0.5, text="x", replies=[{"text": "y"}]).replies[0].author == ""
