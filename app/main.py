"""The web app: JSON API, HTML pages, event streams and the frame store, in one FastAPI app."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app import errors
from app.config import REPO_ROOT, get_settings
from app.routes import health, keyframes, pages, renders, transitions

log = logging.getLogger("segue")


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
    errors.install(app)
    for router in (transitions.router, keyframes.router, renders.router, health.router, pages.router):
        app.include_router(router)

    settings.frames_dir.mkdir(parents=True, exist_ok=True)
    app.mount("/media/frames", StaticFiles(directory=settings.frames_dir), name="frames")
    app.mount("/static", StaticFiles(directory=REPO_ROOT / "static"), name="static")
    return app
