"""Sending work to the queue: when the broker cannot be reached, the job is marked failed with the reason
(nothing is left queued that no worker will ever run) and the caller gets BrokerUnavailable (a 503)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from core.statuses import Status
from infra.tables import utcnow
from services.errors import BrokerUnavailable

log = logging.getLogger(__name__)

QUEUE_AWAY = "the render queue is unreachable"


@contextmanager
def sent_or_failed(what: str, fail: Callable[[str], object]) -> Iterator[None]:
    """Run the block sending `what`; if it raises, `fail(reason)` records why, BrokerUnavailable says so."""
    try:
        yield
    except Exception as exc:
        log.exception("could not queue %s", what)
        reason = f"{QUEUE_AWAY}: {exc}"
        fail(reason)
        raise BrokerUnavailable(reason) from exc


def failing_job(db: Session, row: Any) -> Callable[[str], None]:
    """How a job row (a switch step search, a suggestions request) that cannot be queued ends: failed."""

    def fail(reason: str) -> None:
        row.status, row.error, row.finished_at = Status.FAILED, reason, utcnow()
        db.commit()

    return fail
