"""study_blocks: reading each U-Net block for a study's frames (worker/block_features.py, docs/studies.md)

- study_blocks: one row per study (unique study_id, cascade): status queued|running|done|failed, progress
  (frames_total, frames_done, readings stored), error, times, and the worker's lease (lease_token,
  leased_until, attempts) like the other jobs. The readings are frame_scores rows `unet/<block>@t<t>`.

Revision ID: 0018_study_blocks
Revises: 0017_keyframe_images
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_study_blocks"
down_revision = "0017_keyframe_images"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "study_blocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("frames_total", sa.Integer(), nullable=False),
        sa.Column("frames_done", sa.Integer(), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", name="uq_study_blocks_study"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("study_blocks")
