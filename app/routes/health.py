from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.deps import SettingsDep
from infra import heartbeat
from infra.db import database_engine
from infra.queue import broker_error
from infra.storage import get_store

router = APIRouter(tags=["health"])

HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "ok: the database and the render queue answer and a worker is alive"},
    503: {
        "description": "degraded (`down` names what: database, broker, frame store, no worker alive) "
        "or down (no database)"
    },
}


@router.get("/healthz", responses=HEALTH_RESPONSES)
def healthz(settings: SettingsDep) -> JSONResponse:
    """200 `ok` when Segue can render: its database and render queue answer and a worker is alive
    (workers write a heartbeat row every few seconds, in both modes). Otherwise 503 with `status`
    `degraded` and `down` naming what is not there ("database", "broker", "frame store",
    "no worker alive")."""
    body: dict[str, Any] = {"mode": settings.mode, "model": settings.model}
    down: list[str] = []
    try:
        with database_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        body["database"] = {"ok": True, "backend": database_engine().dialect.name}
    except Exception as exc:
        body["database"] = {"ok": False, "error": str(exc).splitlines()[0][:300]}
        down.append("database")
    problem = broker_error()
    body["broker"] = {"ok": problem is None, "url": settings.broker_url.split("@")[-1]}
    if problem:
        body["broker"]["error"] = problem[:300]
        down.append("broker")
    body["frame_store"] = _frame_store()
    if not body["frame_store"]["ok"]:
        down.append("frame store")
    body["workers"] = _workers(settings.render_queue, database_ok=body["database"]["ok"])
    if body["workers"]["alive"] == 0:
        down.append("no worker alive")
    body["down"] = down
    body["status"] = "ok" if not down else "down" if "database" in down else "degraded"
    return JSONResponse(body, status_code=200 if not down else 503)


def _frame_store() -> dict[str, Any]:
    store = get_store()
    try:
        store.check()
    except Exception as exc:
        return {"ok": False, "store": store.describe(), "error": str(exc).splitlines()[0][:300]}
    return {"ok": True, "store": store.describe()}


def _workers(queue: str, database_ok: bool) -> dict[str, Any]:
    if not database_ok:
        return {"alive": 0, "known": 0, "error": "the database is unreachable"}
    try:
        rows = heartbeat.alive(queue)
    except Exception as exc:
        return {"alive": 0, "known": 0, "error": str(exc).splitlines()[0][:300]}
    return {
        "alive": len(rows),
        "known": len(rows),
        "names": [r.name for r in rows],
        "busy": {r.name: r.busy for r in rows if r.busy},
        "heartbeat_within_seconds": heartbeat.alive_window(),
    }
