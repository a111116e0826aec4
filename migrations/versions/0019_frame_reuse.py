"""Neighbour reuse: shared in-betweens fed with their anchors' deep features at late steps (issue 20 §2)

- transitions: neighbour_reuse_from (float, 1.0 = off). Existing rows get the "off" value, which computes
  and keys frames as before.

Revision ID: 0019_frame_reuse
Revises: 0018_study_blocks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_frame_reuse"
down_revision = "0018_study_blocks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("neighbour_reuse_from", sa.Float(), server_default="1.0", nullable=False)
        )


def downgrade() -> None:
    # Never a table rebuild (see 0010): ALTER TABLE … DROP COLUMN is SQLite 3.35+ and PostgreSQL.
    with op.batch_alter_table("transitions", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("neighbour_reuse_from")
