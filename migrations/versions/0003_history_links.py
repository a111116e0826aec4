"""edit history, optimistic versions and share links

- edits: who (link_id), what changed (before_state / after_state), which edit an undo or redo names
  (target_id), and one row per (transition, version);
- share_links: hashed tokens with a role, an optional expiry and a revocation time;
- transition_events: the co-viewing channel of each transition in embedded mode;
- keyframes: ids are never reused on SQLite either (AUTOINCREMENT), so undoing a delete restores the
  keyframe under its own id.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "share_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transition_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["transition_id"], ["transitions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("share_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_share_links_transition_id"), ["transition_id"], unique=False)

    op.create_table(
        "transition_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transition_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("transition_events", schema=None) as batch_op:
        batch_op.create_index("ix_transition_events_transition_id_id", ["transition_id", "id"], unique=False)

    # Versions written before the compare-and-swap could repeat under concurrent writes: keep the first.
    op.execute(
        "DELETE FROM edits WHERE id NOT IN (SELECT MIN(id) FROM edits GROUP BY transition_id, version)"
    )
    with op.batch_alter_table("edits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("before_state", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("after_state", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("target_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_edits_link_id_share_links", "share_links", ["link_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_unique_constraint("uq_edit_version", ["transition_id", "version"])

    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "keyframes", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch_op:
            pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "keyframes", recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ) as batch_op:
            pass

    with op.batch_alter_table("edits", schema=None) as batch_op:
        batch_op.drop_constraint("uq_edit_version", type_="unique")
        batch_op.drop_constraint("fk_edits_link_id_share_links", type_="foreignkey")
        batch_op.drop_column("target_id")
        batch_op.drop_column("after_state")
        batch_op.drop_column("before_state")
        batch_op.drop_column("link_id")

    with op.batch_alter_table("transition_events", schema=None) as batch_op:
        batch_op.drop_index("ix_transition_events_transition_id_id")
    op.drop_table("transition_events")

    with op.batch_alter_table("share_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_share_links_transition_id"))
    op.drop_table("share_links")
