"""review notes: notes pinned to a moment or range of a transition, and their replies (docs/notes.md)

- notes: transition_id (cascade), t, t_end (null: a single moment), text, author, status (open|resolved),
  link_id (the share link it came through; null: the owner), created_at;
- note_replies: note_id (cascade), text, author, link_id, created_at.
Share links may now carry the role `comment` (the role column is already a String(8)).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transition_id", sa.Integer(), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("t_end", sa.Float(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["transition_id"], ["transitions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["link_id"], ["share_links.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_notes_transition_id", "notes", ["transition_id"])
    op.create_table(
        "note_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("note_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=80), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["note_id"], ["notes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["link_id"], ["share_links.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_note_replies_note_id", "note_replies", ["note_id"])


def downgrade() -> None:
    op.drop_index("ix_note_replies_note_id", table_name="note_replies")
    op.drop_table("note_replies")
    op.drop_index("ix_notes_transition_id", table_name="notes")
    op.drop_table("notes")
