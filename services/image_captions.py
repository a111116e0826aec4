"""Captions of keyframe images (docs/image-endpoints.md): the text condition of a picture keyframe without
a prompt, chosen by the worker and kept in the frame store beside the picture's inversion.

A caption is a function of the picture (its SHA-256) and the model's revision only, so it is stored under
a key of those two (`caption_key`), as a 1 x 1 PNG carrying the text in an iTXt chunk (the frame store keeps
PNG files by key). The web side reads it back to show it; the worker writes it once and reuses it.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from infra.storage import get_store

#: The PNG text chunk the caption lives in.
CAPTION_CHUNK = "segue-caption"


def caption_key(image_sha256: str, model_revision: str) -> str:
    """The frame-store key of a picture's caption under one model revision."""
    text = json.dumps(["caption", image_sha256, model_revision])
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def caption_png(caption: str) -> bytes:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt(CAPTION_CHUNK, caption)
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def png_caption(data: bytes) -> str | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            value = image.text.get(CAPTION_CHUNK)  # type: ignore[attr-defined]
    except (OSError, ValueError):
        return None
    return str(value) if value is not None else None


def stored_caption(image_sha256: str, model_revision: str, store: Any = None) -> str | None:
    """The caption chosen for the picture under this model revision, or None (not chosen yet).

    store: a frame store (default: the studio's; `segue render` passes its own)."""
    store = store or get_store()
    key = caption_key(image_sha256, model_revision)
    return png_caption(store.read(key)) if store.exists(key) else None


def keep_caption(image_sha256: str, model_revision: str, caption: str, store: Any = None) -> None:
    (store or get_store()).write(caption_key(image_sha256, model_revision), caption_png(caption))


def shown_caption(keyframe: object) -> str | None:
    """What the page and GET /api/keyframes/{id} show as a keyframe's caption: only for a picture keyframe
    without a prompt, once a render has chosen it (and not when it is empty: a model without a CLIP)."""
    image = getattr(keyframe, "image", None)
    if not image or (getattr(keyframe, "prompt", "") or "").strip():
        return None
    from core.registry import model_revision
    from infra.config import get_settings

    settings = get_settings()
    transition = getattr(keyframe, "transition")  # noqa: B009
    revision = model_revision(transition.model, settings.models_folder)
    return stored_caption(image["sha256"], revision) or None
