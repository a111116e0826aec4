"""Images as the frame store keeps them: PNG bytes, and the small thumbnails probes are shown as."""

from __future__ import annotations

import io
from typing import Any

#: The longest side of a probe's thumbnail (suggestions, fixes).
THUMBNAIL_SIDE = 128


def png(image: Any) -> bytes:
    """A PIL image as PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def stored_picture(store: Any, key: str) -> Any:
    """An image the frame store keeps under `key` (a keyframe's picture: its SHA-256), as RGB."""
    import PIL.Image

    return PIL.Image.open(io.BytesIO(store.read(key))).convert("RGB")


def thumbnail(image: Any, side: int = THUMBNAIL_SIDE) -> Any:
    """The image scaled down to fit `side` (itself when it already fits)."""
    if max(image.size) <= side:
        return image
    copy = image.copy()
    copy.thumbnail((side, side))
    return copy
