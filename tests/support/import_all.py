"""`python -m tests.support.import_all NAME ...`: import each named module (scripts must at least import)."""

from __future__ import annotations

import importlib
import sys

if __name__ == "__main__":
    for name in sys.argv[1:]:
        importlib.import_module(name)
