"""Image endpoints (docs/image-endpoints.md): a keyframe's image, and what image keyframes' frames show

- keyframes.image: JSON {sha256, width, height} of a PNG kept in the frame store (null: no image);
- transitions.image_endpoints: "image" (the picture itself, for every existing transition) or
  "reconstruction".

Dropping a column rebuilds the table on SQLite with foreign keys off and AUTOINCREMENT kept, as 0014 does.

Revision ID: 0017_keyframe_images
Revises: 0016_studies
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0017_keyframe_images"
down_revision = "0016_studies"
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
            sa.Column("image_endpoints", sa.String(length=16), nullable=False, server_default="image")
        )
    with op.batch_alter_table("keyframes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with _sqlite_rebuild_safely():
        with op.batch_alter_table("keyframes", schema=None, **KEEP_IDS) as batch_op:
            batch_op.drop_column("image")
        with op.batch_alter_table("transitions", schema=None, **KEEP_IDS) as batch_op:
            batch_op.drop_column("image_endpoints")
