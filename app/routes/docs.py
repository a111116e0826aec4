"""API docs that work offline: Swagger UI at /docs and ReDoc at /redoc, from assets in static/vendor/.

The pages are Segue's own (templates/docs/), started by scripts in static/docs/: FastAPI's built-in pages
use inline scripts and styles, which the Content-Security-Policy refuses (app/security.py)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.deps import SettingsDep
from app.security import content_security_policy
from app.templating import templates

router = APIRouter(include_in_schema=False)

# Pinned versions; static/vendor/*/README.md says where each came from and its licence.
SWAGGER_UI = "/static/vendor/swagger-ui-5.35.0"
REDOC = "/static/vendor/redoc-2.5.4"
#: The two <style> elements the ReDoc bundle adds as it loads, before it knows the nonce (an empty one, and
#: its scrollbar rules): their hashes, for this pinned version. tests/e2e/test_security.py sees no violation.
REDOC_STYLE_HASHES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=' "
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='"
)


def _openapi_url(request: Request) -> str:
    return request.scope.get("root_path", "") + (request.app.openapi_url or "/openapi.json")


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> Response:
    return templates.TemplateResponse(
        request,
        "docs/swagger.html",
        {"title": f"{request.app.title} API", "assets": SWAGGER_UI, "openapi_url": _openapi_url(request)},
    )


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request, settings: SettingsDep) -> Response:
    # ReDoc styles itself with <style> elements (styled-components): they carry this page's nonce, which
    # static/docs/redoc-init.js hands to ReDoc; its search runs in a worker it makes from a blob. Scripts
    # stay 'self' only.
    nonce = secrets.token_urlsafe(16)
    response = templates.TemplateResponse(
        request,
        "docs/redoc.html",
        {
            "title": f"{request.app.title} API",
            "assets": REDOC,
            "favicon": f"{SWAGGER_UI}/favicon-32x32.png",
            "openapi_url": _openapi_url(request),
            "nonce": nonce,
        },
    )
    response.headers["Content-Security-Policy"] = content_security_policy(
        settings, extra_style=f"'nonce-{nonce}' {REDOC_STYLE_HASHES}", worker_src="'self' blob:"
    )
    return response
