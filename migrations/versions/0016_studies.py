"""studies: human judgments on renders through participant links (docs/studies.md)

- studies: title, tasks (JSON list of rate|mark|triplets), concept, instructions, seed, triplet count and
  sampler, the renders (JSON list of ids, in the researcher's order), created_at;
- study_items: study_id (cascade), kind (rate|mark|triplet), render_id (cascade), frames (JSON: a triplet's
  three frame indices in the order shown; empty for rate and mark), position;
- study_participants: study_id (cascade), token (unique; the researcher copies the link again), label;
- study_answers: participant_id and item_id (cascade; unique together: one answer per item per person),
  answer (a number: the rating, the t marked, or the frame index picked), comment, ms (the response
  time measured in the participant's browser), created_at.

Revision ID: 0016_studies
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_studies"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("render_ids", sa.JSON(), nullable=False),
        sa.Column("concept", sa.String(length=200), nullable=True),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("triplet_count", sa.Integer(), nullable=False),
        sa.Column("sampler", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "study_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("render_id", sa.Integer(), nullable=False),
        sa.Column("frames", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["render_id"], ["renders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_study_items_study_id", "study_items", ["study_id"])
    op.create_index("ix_study_items_render_id", "study_items", ["render_id"])
    op.create_table(
        "study_participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token", name="uq_study_participant_token"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_study_participants_study_id", "study_participants", ["study_id"])
    op.create_table(
        "study_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("answer", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("ms", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["participant_id"], ["study_participants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["item_id"], ["study_items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("participant_id", "item_id", name="uq_study_answer"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_study_answers_item_id", "study_answers", ["item_id"])


def downgrade() -> None:
    op.drop_index("ix_study_answers_item_id", table_name="study_answers")
    op.drop_table("study_answers")
    op.drop_index("ix_study_participants_study_id", table_name="study_participants")
    op.drop_table("study_participants")
    op.drop_index("ix_study_items_render_id", table_name="study_items")
    op.drop_index("ix_study_items_study_id", table_name="study_items")
    op.drop_table("study_items")
    op.drop_table("studies")
