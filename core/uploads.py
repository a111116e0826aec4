"""Files a person sends (images, audio): checked before anything is kept, kept and served by content hash.

Pure (Pillow, no web framework), so routes and workers use the same rules:

    upload = check_upload(data, field="image", accept={"image"})   # UploadRefused (-> 422) on any rule
    path = store_upload(root, upload)                               # root/ab/ab12...ef.png, written once
    headers = serving_headers(upload.name)                          # the type it was sniffed as, nosniff

The rules (docs/security.md, "Uploads"):
- the type is sniffed from the bytes, never taken from the file name or the Content-Type a client sent;
- only the raster images and audio formats in KINDS are accepted: never HTML, SVG, XML or PDF, which a
  browser would run as a document on Segue's origin;
- an image's pixels are counted from its header before anything is decoded: a decompression bomb (a few
  kB that decode to gigabytes) is refused, as is a file whose bytes are not the image they claim;
- the stored name is the SHA-256 of the bytes plus the sniffed extension, so a name says nothing a person
  chose, the same file is kept once, and a stored file never changes under its URL.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

#: At most this many bytes per upload unless the caller says otherwise.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: At most this many pixels (width x height) per image: 4096 x 4096.
MAX_IMAGE_PIXELS = 4096 * 4096
#: A stored upload's name: its SHA-256 and the extension of the type it was sniffed as.
NAME_PATTERN = re.compile(r"^[0-9a-f]{64}\.(png|jpg|webp|gif|wav|mp3|ogg|flac)$")


@dataclass(frozen=True)
class Kind:
    media_type: str
    extension: str
    category: str  # "image" or "audio"
    label: str
    pillow_format: str | None = None  # what Pillow must find in an image's bytes


KINDS: dict[str, Kind] = {
    k.extension: k
    for k in (
        Kind("image/png", "png", "image", "PNG", "PNG"),
        Kind("image/jpeg", "jpg", "image", "JPEG", "JPEG"),
        Kind("image/webp", "webp", "image", "WebP", "WEBP"),
        Kind("image/gif", "gif", "image", "GIF", "GIF"),
        Kind("audio/wav", "wav", "audio", "WAV"),
        Kind("audio/mpeg", "mp3", "audio", "MP3"),
        Kind("audio/ogg", "ogg", "audio", "Ogg"),
        Kind("audio/flac", "flac", "audio", "FLAC"),
    )
}


class UploadRefused(ValueError):
    """An upload breaks a rule: `field` names the form or API field, `message` says what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class CheckedUpload:
    data: bytes
    kind: Kind
    sha256: str
    width: int | None = None
    height: int | None = None

    @property
    def media_type(self) -> str:
        return self.kind.media_type

    @property
    def name(self) -> str:
        """The stored file name: content hash and sniffed extension (e.g. `9f86...0f.png`)."""
        return f"{self.sha256}.{self.kind.extension}"

    @property
    def key(self) -> str:
        """Where it lives under an uploads root or bucket prefix: `9f/9f86...0f.png`."""
        return f"{self.sha256[:2]}/{self.name}"


def sniff(data: bytes) -> Kind | None:
    """The kind the bytes are, from their first bytes; None for anything else (HTML, SVG, text, ...)."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return KINDS["png"]
    if head.startswith(b"\xff\xd8\xff"):
        return KINDS["jpg"]
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return KINDS["gif"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return KINDS["webp"]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return KINDS["wav"]
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return KINDS["mp3"]
    if head.startswith(b"OggS"):
        return KINDS["ogg"]
    if head.startswith(b"fLaC"):
        return KINDS["flac"]
    return None


def _labels(accept: Collection[str]) -> str:
    return ", ".join(k.label for k in KINDS.values() if k.category in accept)


def check_upload(
    data: bytes,
    *,
    field: str = "file",
    accept: Collection[str] = ("image",),
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> CheckedUpload:
    """The upload, sniffed and hashed, or UploadRefused naming `field` and what is allowed."""
    if not data:
        raise UploadRefused(field, "the file is empty")
    if len(data) > max_bytes:
        raise UploadRefused(field, f"the file is {len(data):,} bytes; at most {max_bytes:,} are accepted")
    kind = sniff(data)
    if kind is None or kind.category not in accept:
        what = kind.label if kind is not None else "not a file type Segue accepts"
        raise UploadRefused(
            field, f"this is {what}; accepted: {_labels(accept)} (never HTML, SVG or other documents)"
        )
    width = height = None
    if kind.category == "image":
        width, height = _check_image(data, kind, field, max_pixels)
    digest = hashlib.sha256(data).hexdigest()
    return CheckedUpload(data=data, kind=kind, sha256=digest, width=width, height=height)


def _check_image(data: bytes, kind: Kind, field: str, max_pixels: int) -> tuple[int, int]:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only: nothing is decoded yet
            width, height = image.size
            if width * height > max_pixels:
                raise UploadRefused(
                    field,
                    f"the image is {width} x {height} = {width * height:,} pixels; at most {max_pixels:,} "
                    "are accepted",
                )
            if image.format != kind.pillow_format:
                raise UploadRefused(field, f"the bytes start like {kind.label} but are not {kind.label}")
            image.load()  # within the pixel limit: decoding proves the file is whole
    except UploadRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Past Pillow's own limit it refuses at open, before our count: its message has the pixels.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else f"more than {max_pixels:,} pixels"
        raise UploadRefused(field, f"the image is {size}; at most {max_pixels:,} are accepted") from None
    except Exception as exc:  # truncated, corrupt, or a format trick: Pillow's own errors vary
        raise UploadRefused(field, f"this {kind.label} image cannot be read ({plain_reason(exc)})") from None
    return width, height


def plain_reason(exc: BaseException) -> str:
    """A decoder's error in words for the person who sent the file: without the object reprs, errno numbers
    and placeholder names libraries put in them ("cannot identify image file <_io.BytesIO object at 0x7f…>",
    "[Errno 1094995529] Invalid data found when processing input: '<none>'")."""
    text = re.sub(r"\s*<[^<>]* object at 0x[0-9a-fA-F]+>", "", str(exc))
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    text = re.sub(r":\s*'<none>'\s*$", "", text)
    return text.strip().rstrip(":").strip() or type(exc).__name__


def media_type_for(name: str) -> str:
    """The type a stored upload is served as, from its name; opaque bytes for anything unexpected."""
    if not NAME_PATTERN.match(name):
        return "application/octet-stream"
    return KINDS[name.rsplit(".", 1)[1]].media_type


def serving_headers(name: str) -> dict[str, str]:
    """Headers for serving a stored upload: its sniffed type, never a document, never sniffed again."""
    media_type = media_type_for(name)
    return {
        "Content-Type": media_type,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox; frame-ancestors 'none'",
        "Content-Disposition": "attachment" if media_type == "application/octet-stream" else "inline",
        "Cache-Control": "public, max-age=31536000, immutable",  # a content hash never changes
    }


def store_upload(root: Path, upload: CheckedUpload) -> Path:
    """Keep the upload under `root/<key>` (written once, atomically: readers never see half a file)."""
    target = root / upload.key
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(upload.data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def stored_path(root: Path, name: str) -> Path | None:
    """The stored upload of that name under `root`, or None (a name that is not a content hash included)."""
    if not NAME_PATTERN.match(name):
        return None
    path = root / name[:2] / name
    return path if path.is_file() else None
