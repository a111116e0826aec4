"""What several browser tests share: a JSON call to the running server's API."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def api(server: str, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
    """Call the API of the server under test; the JSON answer ({} for an empty one)."""
    request = urllib.request.Request(
        server + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")
