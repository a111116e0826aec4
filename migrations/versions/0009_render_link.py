"""renders.link_id: the share link a render was started through, for the per-link quota of renders at once

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("renders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_renders_link_id"), ["link_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_renders_link_id_share_links", "share_links", ["link_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("renders", schema=None) as batch_op:
        batch_op.drop_constraint("fk_renders_link_id_share_links", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_renders_link_id"))
        batch_op.drop_column("link_id")
