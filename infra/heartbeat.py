"""Worker heartbeats: each render worker rewrites its row every few seconds; `/healthz` reads them.

They live in the database in both modes, so "no worker alive" is visible on a laptop (embedded mode, whose
filesystem broker cannot ping workers) as well as on a cluster.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from infra.config import get_settings
from infra.db import new_session
from infra.tables import WorkerHeartbeat, utcnow

#: A worker is alive while its last heartbeat is at most this many heartbeat intervals old.
ALIVE_INTERVALS = 3


def alive_window() -> float:
    return ALIVE_INTERVALS * get_settings().heartbeat_seconds


def beat(name: str, queue: str, busy: str | None = None, started_at: Any = None) -> None:
    """Say that worker `name` is alive now (and what it is doing)."""
    now = utcnow()
    with new_session() as db:
        row = db.get(WorkerHeartbeat, name)
        if row is None:
            row = WorkerHeartbeat(
                name=name,
                host=socket.gethostname()[:200],
                pid=os.getpid(),
                queue=queue[:200],
                started_at=started_at or now,
            )
            db.add(row)
        row.seen_at = now
        row.busy = busy[:200] if busy else None
        row.pid = os.getpid()
        db.commit()


def forget(name: str) -> None:
    """A worker that stops cleanly takes its row away at once."""
    with new_session() as db:
        db.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == name))
        db.commit()


def alive(queue: str | None = None) -> list[WorkerHeartbeat]:
    """The workers whose heartbeat is fresh (on `queue`, when given)."""
    since = utcnow() - timedelta(seconds=alive_window())
    query = select(WorkerHeartbeat).where(WorkerHeartbeat.seen_at >= since).order_by(WorkerHeartbeat.name)
    if queue is not None:
        query = query.where(WorkerHeartbeat.queue == queue)
    with new_session() as db:
        return list(db.scalars(query))


def prune(db: Session, older_than_seconds: float = 24 * 3600) -> int:
    """Drop the rows of workers gone for long (a killed worker cannot remove its own)."""
    since = utcnow() - timedelta(seconds=older_than_seconds)
    result = db.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.seen_at < since))
    db.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
