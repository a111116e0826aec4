"""The web app: JSON API, HTML pages, event streams and the frame store, in one FastAPI app."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from app.config import REPO_ROOT, get_settings
from app.routes import health, keyframes, pages, renders, transitions
from app.schemas import FieldError
from app.services import BrokerUnavailable, NotFound

log = logging.getLogger("segue")


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def _message(error: dict[str, Any], field: str) -> str:
    msg = str(error.get("msg", "invalid value"))
    if msg.startswith("Value error, "):
        return msg.removeprefix("Value error, ")
    if error.get("type") == "missing":
        return f"{field} is required"
    if error.get("type") == "extra_forbidden":
        return f"{field} is not a known field"
    return f"{field}: {msg[0].lower()}{msg[1:]}" if msg else field


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors as [{field, msg, type, loc}], each message naming its field and allowed range."""
    out = []
    for error in errors:
        field = _field_of(error.get("loc", ()))
        out.append(
            {
                "field": field,
                "msg": _message(error, field),
                "type": error.get("type"),
                "loc": list(error.get("loc", ())),
            }
        )
    return out


def _error_response(status: int, detail: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "errors": {d["field"]: d["msg"] for d in detail}}, status_code=status
    )


@asynccontextmanager
async def lifespan(_app: FastAPI):  # type: ignore[no-untyped-def]
    settings = get_settings()
    log.info(
        "Segue serving with %s, %s mode, model %s",
        settings.database_url.split("://")[0],
        settings.mode,
        settings.model,
    )
    yield


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="Segue",
        summary="Steer transitions between text prompts in latent diffusion models.",
        version="0.1.0",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(422, validation_errors(list(exc.errors())))

    @app.exception_handler(FieldError)
    async def _field(_request: Request, exc: FieldError) -> JSONResponse:
        return _error_response(
            422, [{"field": exc.field, "msg": exc.message, "type": "value_error", "loc": ["body", exc.field]}]
        )

    @app.exception_handler(NotFound)
    async def _missing(request: Request, exc: NotFound) -> Response:
        if not request.url.path.startswith("/api") and "text/html" in request.headers.get("accept", ""):
            from app.routes.pages import templates

            return templates.TemplateResponse(
                request, "pages/not_found.html", {"message": str(exc).capitalize()}, status_code=404
            )
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(BrokerUnavailable)
    async def _broker(_request: Request, exc: BrokerUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    for router in (transitions.router, keyframes.router, renders.router, health.router, pages.router):
        app.include_router(router)

    settings.frames_dir.mkdir(parents=True, exist_ok=True)
    app.mount("/media/frames", StaticFiles(directory=settings.frames_dir), name="frames")
    app.mount("/static", StaticFiles(directory=REPO_ROOT / "static"), name="static")
    return app
