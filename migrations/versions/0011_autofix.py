"""the loop: autofix runs (autopilot rounds and one-problem fixes), renders that wait for a switch step search

- autofixes: one row per autopilot run or per "Fix" request, held under a lease like other jobs.
- renders.waiting_for: why a queued render has no frames yet (it waits for a MoCE switch step search).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "autofixes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transition_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("max_rounds", sa.Integer(), nullable=False),
        sa.Column("budget_frames", sa.Integer(), nullable=True),
        sa.Column("target_smoothness", sa.Float(), nullable=True),
        sa.Column("problem_id", sa.String(length=64), nullable=True),
        sa.Column("render_id", sa.Integer(), nullable=True),
        sa.Column("link_id", sa.Integer(), nullable=True),
        sa.Column("phase", sa.String(length=200), nullable=False),
        sa.Column("frames_spent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rounds", sa.JSON(), nullable=False),
        sa.Column("proposals", sa.JSON(), nullable=False),
        sa.Column("stopped_because", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["transition_id"], ["transitions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["link_id"], ["share_links.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("autofixes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_autofixes_transition_id"), ["transition_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_autofixes_status"), ["status"], unique=False)
    with op.batch_alter_table("renders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("waiting_for", sa.Text(), nullable=True))


def downgrade() -> None:
    # Never a table rebuild of renders (it would cascade-delete its frames on SQLite): see 0010.
    with op.batch_alter_table("renders", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("waiting_for")
    with op.batch_alter_table("autofixes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_autofixes_status"))
        batch_op.drop_index(batch_op.f("ix_autofixes_transition_id"))
    op.drop_table("autofixes")
