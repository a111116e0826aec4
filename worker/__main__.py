"""`python -m worker worker ...`: Celery's command line (what `segue worker` runs), ended by exit_now.

Once Celery has shut down (the last batches stored and announced, leases released, the broker told), the
process ends with Celery's exit status without the interpreter's slow teardown (worker/exiting.py).
"""

from __future__ import annotations

import sys

from worker.exiting import exit_now


def main() -> None:
    from celery.__main__ import main as celery_main

    sys.argv[0] = "celery"  # usage and help lines name the command a person knows
    try:
        celery_main()
    except SystemExit as exc:
        exit_now(exc.code)
    exit_now(0)


if __name__ == "__main__":
    main()
