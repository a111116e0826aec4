"""animatics: a transition's frame rate, soundtrack offset, audio spacing blend and its soundtrack

- transitions: fps (12), audio_offset (0 s), smooth (0), audio (JSON: the soundtrack's key in the frame
  store, name, media type, duration, sample rate and beat times; null: no soundtrack).
  None of them change a frame's pixels, so frame keys and stored frames stay as they are.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fps", sa.Integer(), server_default="12", nullable=False))
        batch_op.add_column(sa.Column("audio_offset", sa.Float(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("smooth", sa.Float(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("audio", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    # Never a table rebuild: dropping `transitions` to rename its copy would cascade to keyframes and renders.
    with op.batch_alter_table("transitions", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("audio")
        batch_op.drop_column("smooth")
        batch_op.drop_column("audio_offset")
        batch_op.drop_column("fps")
