"""Server-Sent Events read back from a stream's lines: one reader for the benchmarks, the tests and scripts.

Segue's streams (app/streams.py, app/routes/events.py) write them; this reads them as a client does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class EventReader:
    """Reads an event stream line by line: `feed` returns each event ({"event", "data", "id"}) as it ends."""

    def __init__(self) -> None:
        self._current: dict[str, str] = {}

    def feed(self, line: str) -> dict[str, str] | None:
        if not line:
            event, self._current = self._current, {}
            if event.get("event") or event.get("data"):
                event.setdefault("event", "message")
                return event
            return None
        if line.startswith(":"):  # a comment (the server's keep-alive ping)
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data" and "data" in self._current:
            self._current["data"] += "\n" + value
        else:
            self._current[name] = value
        return None


def parse_sse(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """The events of a stream's lines, each as it completes; multi-line data joined with newlines."""
    reader = EventReader()
    for line in _ended(lines):
        event = reader.feed(line)
        if event is not None:
            yield event


def _ended(lines: Iterable[str]) -> Iterator[str]:
    """The lines, then an empty one: a stream cut off after its last event's fields still gives it."""
    yield from lines
    yield ""
