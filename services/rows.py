"""Reading one stored row by id, or a NotFound naming what is missing (a 404 on the web)."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

from services.errors import NotFound

Row = TypeVar("Row")


def found(db: Session, table: type[Row], ident: int, what: str) -> Row:
    """The row of `table` with this id; NotFound("<what> <id> does not exist") when there is none."""
    row = db.get(table, ident)
    if row is None:
        raise NotFound(what, ident)
    return row
