"""Frames served from an object store (SEGUE_FRAME_STORE=s3://...): the same URLs as the local directory.

With the default local store the app mounts the directory instead (app/main.py). Keys are content hashes,
so a frame never changes under its URL and is served as immutable; like the directory, the URLs are public
(unguessable), so <img> tags work on share-link pages without credentials.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response

from app.downloads import frame_response
from core.uploads import serving_headers, stored_path
from infra.config import get_settings
from infra.storage import KEY_PATTERN

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
#: Uploads (core/uploads.py), whatever the frame store: by content hash, as the type they were sniffed as.
uploads = APIRouter(include_in_schema=False)


@uploads.get("/media/uploads/{shard}/{name}")
def upload(shard: str, name: str) -> Response:
    path = stored_path(get_settings().uploads_dir, name)
    if path is None or shard != name[:2]:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    headers = serving_headers(name)
    return FileResponse(path, headers=headers, media_type=headers["Content-Type"])


@router.get("/media/frames/{shard}/{name}")
async def frame(shard: str, name: str) -> Response:
    key = name.removesuffix(".png")
    if not name.endswith(".png") or not KEY_PATTERN.match(key) or shard != key[:2]:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    try:
        return await run_in_threadpool(frame_response, key)
    except FileNotFoundError:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    except Exception as exc:  # the store is away: say so, as the rest of Segue does
        log.warning("frame %s: the frame store did not answer: %s", key, exc)
        return JSONResponse(
            {"detail": "the frame store is not reachable; try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
