"""Who watches a render: its SSE stream says so every few seconds, and the worker sends previews only then.

A preview nobody sees is a projection, eight JPEG encodes and an event write every few steps for nothing.
Distributed mode keeps a Redis key with a time to live; embedded mode (web and worker on one machine, no
Redis) touches a file under the data directory. Both forget a viewer WATCH_SECONDS after its last mark.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from infra.config import get_settings

log = logging.getLogger(__name__)

#: A stream marks its render at least this often (its reads wait at most app.streams.READ_BLOCK_SECONDS).
WATCH_SECONDS = 15.0


@lru_cache(maxsize=4)
def _redis(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def _where(render_id: int) -> tuple[Any, str] | Path:
    settings = get_settings()
    if settings.mode == "distributed":
        return _redis(settings.redis_url), f"{settings.redis_namespace}:render:{render_id}:watching"
    return settings.data_dir / "watching" / f"render-{render_id}"


def watch(render_id: int) -> None:
    """Someone follows this render's events now (called by its SSE stream on each read)."""
    where = _where(render_id)
    try:
        if isinstance(where, Path):
            where.parent.mkdir(parents=True, exist_ok=True)
            where.touch()
        else:
            client, key = where
            client.set(key, "1", ex=int(WATCH_SECONDS))
    except Exception as exc:  # previews are a nicety: a viewer without them still gets every frame
        log.info("could not mark render %s as watched: %s", render_id, exc)


def watched(render_id: int) -> bool:
    """Whether a stream followed this render in the last WATCH_SECONDS (True when that cannot be told)."""
    where = _where(render_id)
    try:
        if isinstance(where, Path):
            return time.time() - where.stat().st_mtime < WATCH_SECONDS
        client, key = where
        return bool(client.exists(key))
    except FileNotFoundError:
        return False
    except Exception as exc:
        log.info("could not tell whether render %s is watched: %s", render_id, exc)
        return True
