"""Server-Sent Events as the tests read them: one parser, for a TestClient stream or any lines."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.testclient import TestClient

#: A render's stream ends with one of these events.
FINAL = ("done", "failed", "cancelled")


def parse_sse(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """Each event as {field: value} (`event`, `data`, `id`...); multi-line data joined with newlines."""
    current: dict[str, str] = {}
    for line in lines:
        if not line:
            if current.get("event"):
                yield current
            current = {}
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        current[name] = current[name] + "\n" + value if name == "data" and "data" in current else value


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
