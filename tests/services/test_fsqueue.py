"""Embedded mode's broker never shows a worker half a message (infra/fsqueue.py)."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from tests.support.isolation import file_broker


def test_a_message_is_visible_to_consumers_only_once_written_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = file_broker(tmp_path)
    folder = tmp_path / "out"
    with Connection("filesystem://", transport_options=options) as conn:
        channel = conn.default_channel
        module = sys.modules[type(channel)._put.__module__]
        takeable: list[list[str]] = []

        class Spy:
            """A file whose writes first look at what a polling consumer would take now."""

            def __init__(self, handle: Any) -> None:
                self.handle = handle

            def write(self, data: bytes) -> int:
                takeable.append([p.name for p in folder.iterdir() if p.name.endswith(".renders.msg")])
                return int(self.handle.write(data))

            def __enter__(self) -> Spy:
                return self

            def __exit__(self, *exc: object) -> None:
                self.handle.close()

            def __getattr__(self, name: str) -> Any:
                return getattr(self.handle, name)

        spy = lambda *a, **k: Spy(builtins.open(*a, **k))  # noqa: E731, SIM115
        monkeypatch.setattr(module, "open", spy, raising=False)
        queue = conn.SimpleQueue("renders")
        queue.put({"render": 7, "indices": [0, 5]})
        assert takeable and all(names == [] for names in takeable), takeable  # nothing takeable mid-write
        monkeypatch.undo()
        message = queue.get(timeout=5)
        assert message.payload == {"render": 7, "indices": [0, 5]}
        message.ack()
        queue.close()
    assert not [p for p in folder.iterdir() if "partial" in p.name]
