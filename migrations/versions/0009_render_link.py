"""renders.link_id: the share link a render was started through, for the per-link quota of renders at once

On SQLite adding a foreign key means rebuilding `renders` (a copy, DROP, RENAME). That runs with foreign keys
off, or dropping the old table would cascade-delete every frame, and keeps AUTOINCREMENT (ids are never
reused), as 0007 does; tests/project/test_deployment.py upgrades and downgrades a filled database.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

FK = "fk_renders_link_id_share_links"


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
    with (
        _sqlite_rebuild_safely(),
        op.batch_alter_table("renders", table_kwargs={"sqlite_autoincrement": True}) as batch_op,
    ):
        batch_op.add_column(sa.Column("link_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_renders_link_id"), ["link_id"], unique=False)
        batch_op.create_foreign_key(FK, "share_links", ["link_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with (
        _sqlite_rebuild_safely(),
        op.batch_alter_table("renders", table_kwargs={"sqlite_autoincrement": True}) as batch_op,
    ):
        batch_op.drop_constraint(FK, type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_renders_link_id"))
        batch_op.drop_column("link_id")
