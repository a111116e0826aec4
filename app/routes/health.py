from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.db import database_engine
from app.deps import SettingsDep
from app.queue import celery_client

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(settings: SettingsDep) -> JSONResponse:
    """200 when the app can serve (its database answers); broker and worker state are reported alongside."""
    body: dict[str, Any] = {"mode": settings.mode, "model": settings.model}
    try:
        with database_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        body["database"] = {"ok": True, "backend": database_engine().dialect.name}
    except Exception as exc:
        body["database"] = {"ok": False, "error": str(exc)}
    try:
        if settings.mode == "distributed":
            import redis

            redis.Redis.from_url(settings.redis_url, socket_timeout=1).ping()
        body["broker"] = {"ok": True, "url": settings.broker_url.split("@")[-1]}
    except Exception as exc:
        body["broker"] = {"ok": False, "error": str(exc)}
    body["workers"] = _workers(settings.mode)
    ok = body["database"]["ok"]
    body["status"] = "ok" if ok and body["broker"]["ok"] else "degraded" if ok else "down"
    return JSONResponse(body, status_code=200 if ok else 503)


def _workers(mode: str) -> dict[str, Any]:
    if mode != "distributed":
        # The filesystem transport has no broadcast channel to ping workers over.
        return {"known": None, "note": "embedded mode: the worker runs beside the web server"}
    try:
        replies = celery_client().control.ping(timeout=0.5) or []
        return {"known": len(replies), "names": sorted(name for reply in replies for name in reply)}
    except Exception as exc:
        return {"known": 0, "error": str(exc)}
