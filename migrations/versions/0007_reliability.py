"""reliability: frame leases, worker heartbeats, events deleted with their render, ids never reused

- frames: lease_token / leased_until / attempts: a worker holds the frames it renders under a lease its
  heartbeat extends; the reaper queues frames whose lease ran out again (a worker died); status indexed;
- worker_heartbeats: one row per live worker (GET /healthz names "no worker alive");
- render_events: deleted with their render (foreign key, ON DELETE CASCADE); orphans removed first;
- SQLite: ids are never reused (AUTOINCREMENT) on every table whose ids are named elsewhere (renders,
  frames, events, transitions, edits, links, exports, suggestions). PostgreSQL sequences never reuse ids.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: Tables recreated with AUTOINCREMENT on SQLite (keyframes already are, since 0003).
NEVER_REUSE = (
    "transitions",
    "renders",
    "frames",
    "edits",
    "share_links",
    "transition_events",
    "render_events",
    "exports",
    "suggestions",
)
RENDER_EVENTS_FK = "fk_render_events_render_id_renders"


def _lease_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
    ]


@contextmanager
def _sqlite_foreign_keys_off() -> Iterator[None]:
    """Recreating a parent table (DROP + RENAME) with foreign keys on would cascade-delete its children.

    SQLite ignores PRAGMA foreign_keys inside a transaction, so the migrations before this one are
    committed first; the work here commits before foreign keys are switched back on.
    """
    raw = op.get_bind().connection.dbapi_connection
    if raw.in_transaction:  # type: ignore[union-attr]
        raw.commit()  # type: ignore[union-attr]
    raw.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    try:
        yield
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()  # type: ignore[union-attr]
        if broken:
            raise RuntimeError(f"foreign keys broken by the migration: {broken[:5]}")
        raw.commit()  # type: ignore[union-attr]
    finally:
        raw.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # Events of renders deleted before events were tied to their render.
    op.execute("DELETE FROM render_events WHERE render_id NOT IN (SELECT id FROM renders)")

    op.create_table(
        "worker_heartbeats",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("busy", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_worker_heartbeats_seen_at"), ["seen_at"], unique=False)

    if not sqlite:
        with op.batch_alter_table("frames", schema=None) as batch_op:
            for column in _lease_columns():
                batch_op.add_column(column)
            batch_op.create_index(batch_op.f("ix_frames_status"), ["status"], unique=False)
        with op.batch_alter_table("render_events", schema=None) as batch_op:
            batch_op.create_foreign_key(
                RENDER_EVENTS_FK, "renders", ["render_id"], ["id"], ondelete="CASCADE"
            )
        return

    with _sqlite_foreign_keys_off():
        for table in NEVER_REUSE:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ) as batch_op:
                if table == "frames":
                    for column in _lease_columns():
                        batch_op.add_column(column)
                    batch_op.create_index(batch_op.f("ix_frames_status"), ["status"], unique=False)
                if table == "render_events":
                    batch_op.create_foreign_key(
                        RENDER_EVENTS_FK, "renders", ["render_id"], ["id"], ondelete="CASCADE"
                    )


def downgrade() -> None:
    # Ids stay AUTOINCREMENT on SQLite: never reusing them is harmless to the older schema.
    sqlite = op.get_bind().dialect.name == "sqlite"
    context = _sqlite_foreign_keys_off() if sqlite else _nothing()
    with context:
        with op.batch_alter_table("render_events", schema=None) as batch_op:
            batch_op.drop_constraint(RENDER_EVENTS_FK, type_="foreignkey")
        with op.batch_alter_table("frames", schema=None) as batch_op:
            batch_op.drop_index(batch_op.f("ix_frames_status"))
            batch_op.drop_column("attempts")
            batch_op.drop_column("leased_until")
            batch_op.drop_column("lease_token")
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_heartbeats_seen_at"))
    op.drop_table("worker_heartbeats")


@contextmanager
def _nothing() -> Iterator[None]:
    yield
