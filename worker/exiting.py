"""Ending a worker or CLI process as soon as its work is done and said.

By then nothing is left to run, but the interpreter's own teardown of torch, diffusers and scipy still takes
about 3 s on a CPU: every restart, deploy, stopped worker and finished `segue render` waited for it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def status_of(code: object) -> int:
    """The exit status sys.exit(code) would give (a message is printed, as Python does, and means 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def exit_now(code: object = 0) -> NoReturn:
    """Flush logs and output, then end the process with sys.exit's status for `code`, skipping teardown."""
    status = status_of(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
