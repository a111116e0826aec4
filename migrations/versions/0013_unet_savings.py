"""U-Net savings: guidance only on the first part of the steps, DeepCache's interval (issue 20)

- transitions: guidance_until (float, 1.0 = guidance on every step), deep_cache_interval (int, 1 = a full
  U-Net at every step). Existing rows get the "off" values, which compute and key frames as before.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guidance_until", sa.Float(), server_default="1.0", nullable=False))
        batch_op.add_column(
            sa.Column("deep_cache_interval", sa.Integer(), server_default="1", nullable=False)
        )


def downgrade() -> None:
    # Never a table rebuild (see 0010): ALTER TABLE … DROP COLUMN is SQLite 3.35+ and PostgreSQL.
    with op.batch_alter_table("transitions", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("deep_cache_interval")
        batch_op.drop_column("guidance_until")
