"""Renders made without a worker, for tests that need finished frames (exports, notes, soundtracks)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def png(index: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A frame that differs from its neighbours: a gradient and a square that moves with the index."""
    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    pixels[..., 1] = (index * 37) % 256
    pixels[8:20, 4 + 6 * index : 16 + 6 * index] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def finish_by_hand(render_id: int) -> None:
    """Mark a render done with an image stored under each frame's key, as a worker would."""
    from infra.db import new_session
    from infra.storage import get_store
    from infra.tables import Render

    with new_session() as db:
        render = db.get(Render, render_id)
        assert render is not None
        for frame in render.frames:
            get_store().write(frame.key, png(frame.index, (64, 64)))
            frame.status = "done"
        render.status = "done"
        db.commit()
