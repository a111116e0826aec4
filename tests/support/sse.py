"""Server-Sent Events as the tests read them: core.sse's parser, for a TestClient stream or any lines."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from core.sse import parse_sse

#: A render's stream ends with one of these events.
FINAL = ("done", "failed", "cancelled")


def read_sse(client: TestClient, url: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """A render's event stream up to its final event."""
    events: list[dict[str, Any]] = []
    with client.stream("GET", url, headers=headers or {}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in parse_sse(response.iter_lines()):
            events.append(event)
            if event["event"] in FINAL:
                break
    return events


def parse_sse_text(text: str) -> list[dict[str, str]]:
    """Every event of a stream read whole (urllib's response body, a socket's bytes)."""
    return list(parse_sse(text.splitlines()))
