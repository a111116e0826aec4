"""The worker's second stage: a rendered batch is scored, stored and announced while the next one denoises.

One thread per worker process takes the batches in the order they were rendered, so frames still arrive
coarse to fine. At most one batch waits here: handing over batch k + 1 first waits for batch k to be done,
so a slow frame store slows the renders down instead of piling images up in memory. The batch's lease
stays held (worker/lease.py Pulse) until its stage ends: a worker that dies meanwhile leaves its frames
running under a lease that runs out, and the reaper queues them again (each is marked done once: lease
.complete). At exit the process finishes what it was handed (concurrent.futures joins its threads).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger(__name__)


class Finishing:
    """A one-thread stage fed one batch at a time (see the module docstring)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segue-finish")
        self._lock = threading.Lock()
        self._last: Future[None] | None = None

    def hand_over(self, work: Callable[[], None]) -> None:
        """Run `work` on the stage once the batch handed over before it is done."""
        with self._lock:
            self.wait()
            self._last = self._executor.submit(work)

    def wait(self) -> None:
        """Until every batch handed over so far is done (a failure was already logged and recorded)."""
        last = self._last
        if last is not None:
            last.exception()  # waits; the work records its own failures (worker.render._finish_handed_over)


_finishing: Finishing | None = None
_finishing_lock = threading.Lock()


def finishing() -> Finishing:
    """This process's second stage, started on first use."""
    global _finishing
    with _finishing_lock:
        if _finishing is None:
            _finishing = Finishing()
        return _finishing


def wait_for_finishing() -> None:
    """Until the batches this process rendered are stored and announced (a worker shutting down, a test)."""
    with _finishing_lock:
        current = _finishing
    if current is not None:
        current.wait()
