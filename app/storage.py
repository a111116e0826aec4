"""The frame store: images kept under the hash of what determines their pixels."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from app.config import Settings, get_settings


class FrameStore:
    """Local directory store. Writes are atomic, so a redelivered task overwrites and never duplicates."""

    url_prefix = "/media/frames"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        # Two-level fan-out keeps directories small for long sessions.
        return self.root / key[:2] / f"{key}.png"

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def write(self, key: str, data: bytes) -> Path:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".png")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def url(self, key: str) -> str:
        return f"{self.url_prefix}/{key[:2]}/{key}.png"


def thumbnail_url(entry: dict[str, Any]) -> str | None:
    """The URL of an image a worker stored for a row's entry (a suggestion's or a probe's thumbnail)."""
    key = entry.get("thumbnail_key")
    return get_store().url(key) if key else None


def get_store(settings: Settings | None = None) -> FrameStore:
    return FrameStore((settings or get_settings()).frames_dir)
