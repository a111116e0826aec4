"""An app served by uvicorn on a free loopback port, in a thread: for a test that reads a stream while it is
written (FastAPI's test client hands a streamed body over only once the stream has ended)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from tests.support.browser import free_port
from tests.support.waiting import wait_for


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve `app` (already started: its lifespan is the test client's) and yield its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=30, interval=0.05, what="uvicorn to serve the app")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
