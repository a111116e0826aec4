"""core/uploads.py: each rule an upload must pass before it is kept, and how a kept one is served."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from core.uploads import (
    KINDS,
    UploadRefused,
    check_upload,
    media_type_for,
    serving_headers,
    sniff,
    store_upload,
    stored_path,
)


def png(width: int = 8, height: int = 6, color: tuple[int, int, int] = (200, 30, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height grey pixels, one compressed row: a few hundred bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_an_image_is_sniffed_hashed_and_sized() -> None:
    data = png(8, 6)
    upload = check_upload(data, field="image")
    assert upload.media_type == "image/png" and upload.kind.extension == "png"
    assert (upload.width, upload.height) == (8, 6)
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    assert upload.name == f"{upload.sha256}.png" and upload.key == f"{upload.sha256[:2]}/{upload.name}"


@pytest.mark.parametrize("fmt,extension", [("JPEG", "jpg"), ("WEBP", "webp"), ("GIF", "gif")])
def test_other_raster_formats_are_accepted_as_what_they_are(fmt: str, extension: str) -> None:
    out = io.BytesIO()
    Image.new("RGB", (5, 4), (10, 20, 30)).save(out, fmt)
    upload = check_upload(out.getvalue())
    assert upload.kind.extension == extension and (upload.width, upload.height) == (5, 4)


def test_the_type_comes_from_the_bytes_not_the_name_a_client_gave() -> None:
    # Whatever the file was called or declared, the bytes decide; a PNG is stored as .png.
    assert check_upload(png()).name.endswith(".png")
    jpeg = io.BytesIO()
    Image.new("RGB", (3, 3)).save(jpeg, "JPEG")
    assert check_upload(jpeg.getvalue()).name.endswith(".jpg")


@pytest.mark.parametrize(
    "data",
    [
        b"<!doctype html><script>alert(1)</script>",
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        b"%PDF-1.7\n",
        b"just some text",
    ],
    ids=["html", "svg", "xml-svg", "pdf", "text"],
)
def test_documents_are_never_accepted(data: bytes) -> None:
    with pytest.raises(UploadRefused) as refused:
        check_upload(data, field="image")
    assert refused.value.field == "image"
    assert "never HTML, SVG" in refused.value.message and "PNG" in refused.value.message


def test_a_kind_the_field_does_not_take_is_refused_naming_what_it_takes() -> None:
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt "
    assert sniff(wav) is KINDS["wav"]
    with pytest.raises(UploadRefused) as refused:
        check_upload(wav, field="image", accept={"image"})
    assert "WAV" in refused.value.message and "accepted: PNG, JPEG, WebP, GIF" in refused.value.message
    assert check_upload(wav, field="audio", accept={"audio"}).media_type == "audio/wav"


def test_empty_and_oversized_files_are_refused() -> None:
    with pytest.raises(UploadRefused, match="empty"):
        check_upload(b"", field="image")
    data = png()
    with pytest.raises(UploadRefused, match=f"the file is {len(data)} bytes; at most 50 are accepted"):
        check_upload(data, field="image", max_bytes=50)


def test_a_decompression_bomb_is_refused_before_anything_is_decoded() -> None:
    bomb = bomb_png(30_000, 30_000)  # 900 megapixels in a few hundred bytes
    assert len(bomb) < 2_000
    with pytest.raises(UploadRefused) as refused:
        check_upload(bomb, field="image")
    assert "the image is 900,000,000 pixels; at most 16,777,216 are accepted" in refused.value.message
    # Below Pillow's own limit the header's size is counted: the same answer, with the dimensions.
    with pytest.raises(UploadRefused, match="8000 x 8000 = 64,000,000 pixels; at most 16,777,216"):
        check_upload(bomb_png(8_000, 8_000), field="image")


def test_the_pixel_limit_is_the_callers_to_choose() -> None:
    with pytest.raises(UploadRefused, match="100 x 100 = 10,000 pixels; at most 5,000"):
        check_upload(png(100, 100), field="image", max_pixels=5_000)
    assert check_upload(png(100, 100), max_pixels=10_000).width == 100


def test_bytes_that_only_start_like_an_image_are_refused() -> None:
    truncated = png(64, 64)[:60]
    with pytest.raises(UploadRefused, match="cannot be read"):
        check_upload(truncated, field="image")


def test_a_stored_upload_is_kept_once_under_its_hash(tmp_path: Path) -> None:
    upload = check_upload(png())
    path = store_upload(tmp_path, upload)
    assert path == tmp_path / upload.sha256[:2] / upload.name and path.read_bytes() == upload.data
    mtime = path.stat().st_mtime_ns
    assert store_upload(tmp_path, check_upload(png())) == path and path.stat().st_mtime_ns == mtime
    assert stored_path(tmp_path, upload.name) == path
    assert stored_path(tmp_path, "../../etc/passwd") is None
    assert stored_path(tmp_path, f"{upload.sha256}.html") is None
    assert not list(tmp_path.rglob(".upload-*"))  # no temporary file left behind


def test_stored_uploads_are_served_as_sniffed_never_as_documents() -> None:
    name = "a" * 64 + ".png"
    headers = serving_headers(name)
    assert headers["Content-Type"] == "image/png" and headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in headers["Content-Security-Policy"] and headers["Content-Disposition"] == "inline"
    for hostile in ("a" * 64 + ".svg", "a" * 64 + ".html", "page.html", "x.png"):
        assert media_type_for(hostile) == "application/octet-stream"
        assert serving_headers(hostile)["Content-Disposition"] == "attachment"
