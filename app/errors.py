"""How each domain error (services/errors.py) is answered over HTTP: 404, 409, 422 naming the field, 429,
503."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from app.templating import templates
from core.uploads import UploadRefused
from infra.storage import StoreError
from services.errors import BrokerUnavailable, Busy, FieldError, NotFound, TooMany, validation_errors

log = logging.getLogger(__name__)


def form_errors(errors: list[dict[str, Any]]) -> dict[str, str]:
    """The same messages, keyed by field, for a form to show next to each input."""
    return {e["field"]: e["msg"] for e in validation_errors(errors)}


def error_response(status: int, detail: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "errors": {d["field"]: d["msg"] for d in detail}}, status_code=status
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = validation_errors(list(exc.errors()))
        if _opens_a_page(request):  # a person's address bar (`/?page=abc`): a page that says what is wrong
            context = {"errors": errors}
            return templates.TemplateResponse(request, "pages/bad_request.html", context, status_code=422)
        return error_response(422, errors)

    @app.exception_handler(FieldError)
    async def _field(_request: Request, exc: FieldError) -> JSONResponse:
        return error_response(
            422, [{"field": exc.field, "msg": exc.message, "type": "value_error", "loc": ["body", exc.field]}]
        )

    @app.exception_handler(UploadRefused)
    async def _upload(_request: Request, exc: UploadRefused) -> JSONResponse:
        # core/uploads.py: an upload that breaks a rule (type, size, pixel limit) is a 422 naming its field.
        where = ["body", exc.field]
        detail = {"field": exc.field, "msg": exc.message, "type": "upload_refused", "loc": where}
        return error_response(422, [detail])

    @app.exception_handler(NotFound)
    async def _missing(request: Request, exc: NotFound) -> Response:
        if _asks_for_html(request):
            return templates.TemplateResponse(
                request, "pages/not_found.html", {"message": str(exc).capitalize()}, status_code=404
            )
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(BrokerUnavailable)
    async def _broker(_request: Request, exc: BrokerUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(StoreError)
    async def _store(_request: Request, exc: StoreError) -> JSONResponse:
        return _unavailable("frame store", exc, "the frame store is not reachable right now")

    @app.exception_handler(Busy)
    async def _busy(_request: Request, exc: Busy) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(TooMany)
    async def _too_many(_request: Request, exc: TooMany) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": "10"})

    # The database away for a moment (restarting, unreachable, locked): 503, and the next request after it
    # returns works again without a restart (pool_pre_ping replaces the dead connections).
    from sqlalchemy import exc as sa_exc

    async def _database(_request: Request, exc: Exception) -> JSONResponse:
        return _unavailable("database", exc, "the database is unreachable right now; nothing was changed")

    for kind in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
        app.add_exception_handler(kind, _database)

    # A body FastAPI or Starlette could not read (not UTF-8, not JSON, nested too deeply, a broken multipart
    # form, too many files) is bad input like any other: the documented 422 shape naming the body, not a bare
    # 400 "There was an error parsing the body". No route of Segue's raises a 400 of its own.
    from fastapi.exception_handlers import http_exception_handler
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:
            cause = exc.__cause__
            kind = "json_invalid"
            if isinstance(cause, RecursionError):
                message = "the body is not valid JSON: it is nested too deeply"
            elif isinstance(cause, ValueError) and "int_max_str_digits" in str(cause):
                message = "the body is not valid JSON: a number in it has too many digits"
            elif isinstance(cause, (UnicodeDecodeError, ValueError)):
                message = f"the body is not valid UTF-8 JSON ({cause})"[:300]
            else:
                message, kind = f"the body could not be read: {exc.detail}"[:300], "body_invalid"
            return error_response(422, [{"field": "body", "msg": message, "type": kind, "loc": ["body"]}])
        return await http_exception_handler(request, exc)


def _asks_for_html(request: Request) -> bool:
    """A browser asking for a page or a fragment, not an API client."""
    return not request.url.path.startswith("/api") and "text/html" in request.headers.get("accept", "")


def _opens_a_page(request: Request) -> bool:
    """A browser navigating to a page (not an htmx swap, which has its own error lines)."""
    return request.method == "GET" and _asks_for_html(request) and "hx-request" not in request.headers


def _unavailable(what: str, exc: Exception, detail: str) -> JSONResponse:
    """503 for a dependency that is away for a moment; the next request after it returns works again."""
    log.warning("%s unavailable: %s", what, str(exc).splitlines()[0][:300])
    return JSONResponse(
        {"detail": f"{detail}, try again in a moment"}, status_code=503, headers={"Retry-After": "5"}
    )
