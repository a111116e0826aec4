"""job leases: exports, suggestions, switch step searches and the planning of renders are held like frames

- exports, suggestions, concept_searches, renders: lease_token / leased_until / attempts. A worker claims
  the job with one conditional UPDATE and its heartbeat extends the lease; the reaper queues a job whose
  lease ran out again, and fails it after max_attempts takes (worker/lease.py, services/jobs.py).
  On renders the lease is the planning's (probed spacing), held while the render has no frames yet.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = ("exports", "suggestions", "concept_searches", "renders")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("lease_token", sa.String(length=32), nullable=True))
            batch_op.add_column(sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True))
            batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    # Never a table rebuild (SQLite's batch default for dropping a column): dropping `renders` to rename its
    # copy would cascade-delete its frames. ALTER TABLE … DROP COLUMN is SQLite 3.35+ and PostgreSQL.
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None, recreate="never") as batch_op:
            batch_op.drop_column("attempts")
            batch_op.drop_column("leased_until")
            batch_op.drop_column("lease_token")
