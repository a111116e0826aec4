"""The web app: JSON API, HTML pages, event streams and the frame store, in one FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from app import errors, openapi
from app.deps import enforce_access
from app.routes import (
    autofix,
    docs,
    exports,
    health,
    keyframes,
    media,
    pages,
    projects,
    renders,
    scores,
    signin,
    transitions,
)
from app.routes.audio import pages as audio_pages
from app.routes.audio import router as audio_router
from app.routes.compare import router as compare_router
from app.routes.events import router as events_router
from app.routes.history import install as install_history
from app.routes.history import pages as history_pages
from app.routes.history import router as history_router
from app.routes.links import router as links_router
from app.routes.notes import pages as notes_pages
from app.routes.notes import router as notes_router
from app.routes.participants import pages as participant_pages
from app.routes.participants import router as participants_router
from app.routes.studies import pages as studies_pages
from app.routes.studies import router as studies_router
from app.routes.study_blocks import pages as study_block_pages
from app.routes.study_blocks import router as study_blocks_router
from app.routes.suggestions import pages as suggestion_pages
from app.routes.suggestions import router as suggestions_router
from app.security import (
    SecurityMiddleware,
    TokenThrottle,
    ensure_owner_secret,
    install_log_redaction,
    owner_required,
    owner_token_path,
    parse_origins,
    refuse_public_without_secret,
)
from infra import bus
from infra.config import REPO_ROOT, get_settings
from infra.storage import get_store
from services import jobs

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
    # A request never waits out a Redis outage (workers do); the reaper queues batches of dead workers again.
    bus.cap_publish_retry(2.0)
    reaper = asyncio.create_task(jobs.reaper_loop(), name="segue-reaper")
    try:
        yield
    finally:
        reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reaper


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="Segue",
        summary="Steer transitions between text prompts in latent diffusion models.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from vendored assets by app/routes/docs.py, so they work offline
        redoc_url=None,
        # Every route checks who asks (share links, SEGUE_REQUIRE_LINK): app/deps.enforce_access.
        dependencies=[Depends(enforce_access)],
    )
    # Hostile pages (docs/security.md): Hosts, cross-site writes, headers, the owner's secret, clean logs.
    if owner_required(settings):
        refuse_public_without_secret(settings)
        secret, created = ensure_owner_secret(settings)
        if created:  # started without `segue run` (uvicorn, compose): the log is where the person looks
            kept = owner_token_path(settings)
            log.warning("Owner secret (sign in at /signin; kept in %s): %s", kept, secret)
    app.state.token_throttle = TokenThrottle(settings.max_token_failures)
    install_log_redaction()
    origins = parse_origins(settings.allowed_origins)
    if origins:  # CORS stays closed unless a second front end is named
        app.add_middleware(
            CORSMiddleware,
            allow_origins=sorted(origins),
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "X-Segue-Client"],
        )
    app.add_middleware(SecurityMiddleware, settings=settings)
    errors.install(app)
    openapi.install(app)  # 404/409/422/503 documented where they can happen
    install_history(app)  # 409 with the current state; 401/403/404 for links
    routers = [
        transitions.router,
        keyframes.router,
        renders.router,
        scores.router,
        health.router,
        docs.router,
        signin.router,
        pages.router,
        suggestions_router,
        suggestion_pages,
    ]
    for router in routers:
        app.include_router(router)
    # Exports of renders and project files: API and the render panel's / new page's forms.
    for router in (exports.router, exports.pages, projects.router, projects.pages):
        app.include_router(router)
    # Undo/redo and history, share links, live co-viewing, comparing two renders.
    for router in (history_router, history_pages, links_router, events_router, compare_router):
        app.include_router(router)
    # The loop: a Fix per problem and the autopilot.
    for router in (autofix.router, autofix.pages):
        app.include_router(router)
    # Soundtracks and time (docs/animatics.md).
    for router in (audio_router, audio_pages):
        app.include_router(router)
    # Review notes (docs/notes.md).
    for router in (notes_router, notes_pages):
        app.include_router(router)
    # Studies: researchers' studies and participants' links (docs/studies.md).
    for router in (studies_router, studies_pages, participants_router, participant_pages):
        app.include_router(router)
    for router in (study_blocks_router, study_block_pages):  # each U-Net block against people
        app.include_router(router)

    store = get_store(settings)
    if store.local_root is not None:
        store.local_root.mkdir(parents=True, exist_ok=True)
        app.mount(store.url_prefix, StaticFiles(directory=store.local_root), name="frames")
    else:
        app.include_router(media.router)  # frames read from the object store and served from here
    app.include_router(media.uploads)
    app.mount("/static", StaticFiles(directory=REPO_ROOT / "static"), name="static")
    return app
