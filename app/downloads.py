"""HTTP responses for what the frame store hands out (infra.storage.Stored): a file on this machine (the
server answers byte ranges itself), a frame's bytes, or an object's body streamed with its range."""

from __future__ import annotations

from starlette.responses import FileResponse, Response, StreamingResponse

from infra.storage import IMMUTABLE, Stored, get_store


def stored_response(stored: Stored, media_type: str, headers: dict[str, str]) -> Response:
    if stored.path is not None:
        return FileResponse(stored.path, media_type=media_type, headers=headers)
    if stored.data is not None:
        return Response(stored.data, media_type=media_type, headers=headers)
    assert stored.chunks is not None
    out = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(stored.size)}
    if stored.content_range:
        out["Content-Range"] = stored.content_range
    status = 206 if stored.content_range else 200  # browsers seek in a video or a soundtrack with ranges
    return StreamingResponse(stored.chunks, status_code=status, media_type=media_type, headers=out)


def frame_response(key: str) -> Response:
    """A stored frame (when the app does not serve the frame directory itself); FileNotFoundError if gone."""
    return stored_response(get_store().open_frame(key), "image/png", {"Cache-Control": IMMUTABLE})


def export_response(
    name: str, media_type: str, headers: dict[str, str], range_header: str | None = None
) -> Response:
    """An export file as a download, a byte range of it when asked; FileNotFoundError when gone."""
    return stored_response(get_store().open_export(name, range_header), media_type, headers)


def audio_response(name: str, media_type: str, range_header: str | None = None) -> Response:
    """A soundtrack for a browser, byte ranges answered; FileNotFoundError when gone."""
    stored = get_store().open_audio(name, range_header)
    return stored_response(stored, media_type, {"Cache-Control": IMMUTABLE})
