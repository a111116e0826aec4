"""Forward hooks on the shared model that see only their own thread's calls.

One Engine serves several threads at once: a worker scores batch k (the U-Net scorer) while batch k + 1
denoises (DeepCache keeps a feature of the same up-block). A plain forward hook would catch both threads'
activations; these catch only the calls made by the thread that registered them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def hook_this_thread(module: Any, keep: Callable[[Any], None]) -> Any:
    """A forward hook calling keep(output) for calls from this thread only; returns its handle."""
    owner = threading.get_ident()

    def hook(_module: Any, _inputs: Any, output: Any) -> None:
        if threading.get_ident() == owner:
            keep(output)

    return module.register_forward_hook(hook)
