"""frame scores: per frame key and scorer, the frame's embedding and its similarity to its two prompts

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "frame_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("frame_key", sa.String(length=64), nullable=False),
        sa.Column("scorer", sa.String(length=32), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("sim_a", sa.Float(), nullable=True),
        sa.Column("sim_b", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("frame_key", "scorer", name="uq_frame_score"),
    )


def downgrade() -> None:
    op.drop_table("frame_scores")
