"""MoCE: sequential concepts on keyframes, the early prompts of frames, and the switch step searches

- keyframes.concepts: core.params.Concepts as JSON (null: off);
- frames.early_a / early_b: steps before the switch step are conditioned on their blend (null: prompt_a);
- concept_searches: one switch step search per set of inputs (unique input_key), its status, chosen step
  and trace.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("keyframes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("concepts", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.add_column(sa.Column("early_a", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("early_b", sa.Text(), nullable=True))

    op.create_table(
        "concept_searches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transition_id", sa.Integer(), nullable=False),
        sa.Column("keyframe_id", sa.Integer(), nullable=True),
        sa.Column("input_key", sa.String(length=64), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("chosen_step", sa.Integer(), nullable=True),
        sa.Column("trace", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["transition_id"], ["transitions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("input_key", name="uq_concept_search_input_key"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("concept_searches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_concept_searches_transition_id"), ["transition_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("concept_searches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_concept_searches_transition_id"))
    op.drop_table("concept_searches")
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.drop_column("early_b")
        batch_op.drop_column("early_a")
    with op.batch_alter_table("keyframes", schema=None) as batch_op:
        batch_op.drop_column("concepts")
