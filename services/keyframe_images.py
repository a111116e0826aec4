"""Keyframe images (docs/image-endpoints.md): accept a picture for a keyframe, keep it, describe it.

A keyframe's image is a PNG in the frame store under the SHA-256 of its bytes (`/media/frames/ab/ab12...png`,
served like every frame). An uploaded PNG is kept byte for byte; JPEG, WebP and GIF (its first frame) are
re-encoded to PNG once, so every image the engine, the page and the project file see is a PNG.

Every upload passes core/uploads.check_upload (type sniffed from the bytes, decodes whole, pixel limit),
then two rules of its own: at most SEGUE_MAX_UPLOAD_MB, at least MIN_SIDE pixels a side. A refusal is an
UploadRefused naming the field (-> 422) and nothing is stored: bytes are written only by `keep`, which the
keyframe services call as the last step of the edit that attaches the image.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.params import KeyframeImage
from core.uploads import UploadRefused, check_upload
from infra.config import get_settings
from infra.storage import KEY_PATTERN, get_store

#: The smallest side a keyframe image may have, in pixels.
MIN_SIDE = 32
#: A frame already in Segue, as `image_url` names it: the path of its URL (a bucket's public URL too).
#: Only the key is used, to read the frame store: nothing is ever fetched from the URL's host.
FRAME_URL = re.compile(r"(?:^/media/|/)frames/(?P<shard>[0-9a-f]{2})/(?P<key>[0-9a-f]{16,128})\.png$")


@dataclass(frozen=True)
class ImageChange:
    """What an edit does to a keyframe's image: attach `record` (and keep `data`), or remove it (None)."""

    record: dict[str, Any] | None
    data: bytes | None = None


REMOVE = ImageChange(None)


def max_bytes() -> int:
    return int(get_settings().max_upload_mb * 1_000_000)


def _as_png(data: bytes, extension: str) -> bytes:
    if extension == "png":
        return data
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)  # an animated GIF or WebP: its first frame
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        converted = image.convert("RGBA" if has_alpha else "RGB")
    out = io.BytesIO()
    converted.save(out, format="PNG")
    return out.getvalue()


def accept(data: bytes, field: str = "image") -> ImageChange:
    """The image as a keyframe keeps it, or UploadRefused naming `field`; nothing is stored here."""
    limit = max_bytes()
    if len(data) > limit:
        raise UploadRefused(
            field,
            f"the file is {len(data) / 1e6:.1f} MB; at most {limit / 1e6:g} MB are accepted "
            "(SEGUE_MAX_UPLOAD_MB)",
        )
    upload = check_upload(data, field=field, accept={"image"}, max_bytes=limit)
    assert upload.width is not None and upload.height is not None
    if min(upload.width, upload.height) < MIN_SIDE:
        raise UploadRefused(
            field,
            f"the image is {upload.width} x {upload.height} pixels; each side must be at least {MIN_SIDE}",
        )
    png = _as_png(upload.data, upload.kind.extension)
    return ImageChange(record=record_of(png, upload.width, upload.height), data=png)


def record_of(png: bytes, width: int, height: int) -> dict[str, Any]:
    record = KeyframeImage(sha256=hashlib.sha256(png).hexdigest(), width=width, height=height)
    return record.model_dump()


def from_url(url: Any, field: str = "image_url") -> ImageChange:
    """A frame already in Segue (`/media/frames/<shard>/<key>.png`, or the same path on this server's
    address) as a keyframe image; null removes the image."""
    if url is None:
        return REMOVE
    if not isinstance(url, str):
        raise UploadRefused(field, "must be the URL of a frame in Segue (/media/frames/<key>.png) or null")
    path = urlsplit(url).path if url.startswith(("http://", "https://")) else url
    found = FRAME_URL.search(path)
    if found is None or found["shard"] != found["key"][:2] or not KEY_PATTERN.match(found["key"]):
        raise UploadRefused(
            field,
            f"{url[:80]!r} is not a frame of Segue: give a URL like /media/frames/ab/ab12….png, or null",
        )
    try:
        data = get_store().read(found["key"])
    except FileNotFoundError:
        raise UploadRefused(field, f"there is no frame {found['key'][:12]}… in this Segue") from None
    return accept(data, field=field)


def keep(change: ImageChange) -> None:
    """Write the image's bytes to the frame store (once per content; atomic)."""
    if change.record is None or change.data is None:
        return
    store = get_store()
    if not store.exists(change.record["sha256"]):
        store.write(change.record["sha256"], change.data)


def read(record: dict[str, Any] | KeyframeImage) -> bytes:
    """The stored PNG of a keyframe image."""
    sha = record.sha256 if isinstance(record, KeyframeImage) else record["sha256"]
    return get_store().read(sha)


def describe(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """`{url, width, height, sha256}` as the API and the page show a keyframe's image (None: no image)."""
    if not record:
        return None
    return {
        "url": get_store().url(record["sha256"]),
        "width": record["width"],
        "height": record["height"],
        "sha256": record["sha256"],
    }
