"""Attention interpolation (AID): the transition's mode and mixed fraction of the steps, a segment's mode

- transitions.attention_interpolation ("none" for every existing transition), attention_steps (0.5);
- keyframes.attention_interpolation: the segment the keyframe starts (null: the transition's).

Adding a column is a plain ALTER everywhere; dropping one rebuilds the table on SQLite, which runs with
foreign keys off (or dropping `transitions` would cascade-delete every keyframe, render and frame) and
keeps AUTOINCREMENT, as 0009 does.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

KEEP_IDS = {"table_kwargs": {"sqlite_autoincrement": True}}


@contextmanager
def _sqlite_rebuild_safely() -> Iterator[None]:
    """Foreign keys off while a parent table is rebuilt (SQLite ignores the PRAGMA inside a transaction)."""
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    raw = op.get_bind().connection.dbapi_connection
    if raw.in_transaction:  # type: ignore[union-attr]
        raw.commit()  # type: ignore[union-attr]
    raw.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    try:
        yield
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()  # type: ignore[union-attr]
        if broken:
            raise RuntimeError(f"foreign keys broken by the migration: {broken[:5]}")
        raw.commit()  # type: ignore[union-attr]
    finally:
        raw.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def upgrade() -> None:
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("attention_interpolation", sa.String(length=8), nullable=False, server_default="none")
        )
        batch_op.add_column(sa.Column("attention_steps", sa.Float(), nullable=False, server_default="0.5"))
    with op.batch_alter_table("keyframes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attention_interpolation", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with _sqlite_rebuild_safely():
        with op.batch_alter_table("keyframes", schema=None, **KEEP_IDS) as batch_op:
            batch_op.drop_column("attention_interpolation")
        with op.batch_alter_table("transitions", schema=None, **KEEP_IDS) as batch_op:
            batch_op.drop_column("attention_steps")
            batch_op.drop_column("attention_interpolation")
