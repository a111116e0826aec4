"""Where a piece of work stands: a render and its frames, an export, a suggestion, a switch step search, an
autopilot. One set of names, stored in the database and sent on the wire as these values (a StrEnum member
equals its value, so rows written before it and outside clients see the same strings)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class Status(StrEnum):
    PENDING = "pending"  # a frame planned and waiting for its batch (frames only)
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"  # renders and autopilots only
    WAITING = "waiting"  # an autopilot while its round's render is under way (the API says running)


#: Work that has ended and will not change again (a retry makes a new job or requeues it explicitly).
FINISHED = frozenset({Status.DONE, Status.FAILED, Status.CANCELLED})
#: Work someone is still waiting for.
UNFINISHED = frozenset({Status.QUEUED, Status.RUNNING})

# The statuses each kind of work can be in, for the API's schemas (an enum of exactly these values).
#: exports, suggestions, switch step searches: they end done or failed.
JobStatus = Literal[Status.QUEUED, Status.RUNNING, Status.DONE, Status.FAILED]
#: renders and autopilots: they can also be cancelled.
CancellableStatus = Literal[Status.QUEUED, Status.RUNNING, Status.DONE, Status.FAILED, Status.CANCELLED]
