"""DeepCache from a share of the steps: the steps before it all run the full U-Net (issue 20 §2)

- transitions: deep_cache_from (float, 0.0 = DeepCache from the first step, as before). Existing rows get
  that value, which computes and keys frames as before.

Revision ID: 0020_deep_cache_from
Revises: 0019_frame_reuse
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_deep_cache_from"
down_revision = "0019_frame_reuse"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deep_cache_from", sa.Float(), server_default="0.0", nullable=False))


def downgrade() -> None:
    # Never a table rebuild (see 0010): ALTER TABLE … DROP COLUMN is SQLite 3.35+ and PostgreSQL.
    with op.batch_alter_table("transitions", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("deep_cache_from")
