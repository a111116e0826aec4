"""keyframe seeds, holds, cuts, segment settings; transition noise path and spacing

- keyframes: seed, hold_frames, cut, frames, noise_interpolation, switch_step (core.params.KeyframeSettings);
- transitions: noise_interpolation, spacing, spacing_budget, in_between, shared_from_step;
- frames: each frame's path inputs (seed_a, seed_b, noise_t, noise_path, switch_step) and, for shared
  in-betweens, start_step, anchor_a, anchor_b.
Existing rows get the defaults, which render exactly as before (one seed, uniform spacing, full frames).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _keyframes_kwargs() -> dict:
    # 0003 made keyframe ids AUTOINCREMENT on SQLite; keep it if the batch ever recreates the table.
    if op.get_bind().dialect.name == "sqlite":
        return {"table_kwargs": {"sqlite_autoincrement": True}}
    return {}


def upgrade() -> None:
    with op.batch_alter_table("keyframes", schema=None, **_keyframes_kwargs()) as batch_op:
        batch_op.add_column(sa.Column("seed", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("hold_frames", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("cut", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("frames", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("noise_interpolation", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("switch_step", sa.Integer(), nullable=True))

    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("noise_interpolation", sa.String(length=16), nullable=False, server_default="slerp")
        )
        batch_op.add_column(
            sa.Column("spacing", sa.String(length=16), nullable=False, server_default="uniform")
        )
        batch_op.add_column(sa.Column("spacing_budget", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("in_between", sa.String(length=8), nullable=False, server_default="full")
        )
        batch_op.add_column(sa.Column("shared_from_step", sa.Integer(), nullable=True))

    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seed_a", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("seed_b", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("noise_t", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("noise_path", sa.String(length=16), nullable=False, server_default="slerp")
        )
        batch_op.add_column(sa.Column("switch_step", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("start_step", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("anchor_a", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("anchor_b", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("frames", schema=None) as batch_op:
        for name in (
            "anchor_b",
            "anchor_a",
            "start_step",
            "switch_step",
            "noise_path",
            "noise_t",
            "seed_b",
            "seed_a",
        ):
            batch_op.drop_column(name)

    with op.batch_alter_table("transitions", schema=None) as batch_op:
        for name in ("shared_from_step", "in_between", "spacing_budget", "spacing", "noise_interpolation"):
            batch_op.drop_column(name)

    with op.batch_alter_table("keyframes", schema=None, **_keyframes_kwargs()) as batch_op:
        for name in ("switch_step", "noise_interpolation", "frames", "cut", "hold_frames", "seed"):
            batch_op.drop_column(name)
