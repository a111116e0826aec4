"""Errors a person can act on, and how each one is answered: 404, 422 naming the field, 503."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from app.templating import templates
from core.params import error_message, field_of


class NotFound(Exception):
    def __init__(self, what: str, ident: int | str) -> None:
        super().__init__(f"{what} {ident} does not exist")


class FieldError(Exception):
    """A request that is well-formed but not allowed; becomes a 422 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class BrokerUnavailable(Exception):
    """The render queue cannot be reached; nothing was queued."""


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors as [{field, msg, type, loc}], each message naming its field and allowed range."""
    out = []
    for error in errors:
        field = field_of(error.get("loc", ()))
        out.append(
            {
                "field": field,
                "msg": error_message(error, field),
                "type": error.get("type"),
                "loc": list(error.get("loc", ())),
            }
        )
    return out


def form_errors(errors: list[dict[str, Any]]) -> dict[str, str]:
    """The same messages, keyed by field, for a form to show next to each input."""
    return {e["field"]: e["msg"] for e in validation_errors(errors)}


def error_response(status: int, detail: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "errors": {d["field"]: d["msg"] for d in detail}}, status_code=status
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_errors(list(exc.errors())))

    @app.exception_handler(FieldError)
    async def _field(_request: Request, exc: FieldError) -> JSONResponse:
        return error_response(
            422, [{"field": exc.field, "msg": exc.message, "type": "value_error", "loc": ["body", exc.field]}]
        )

    @app.exception_handler(NotFound)
    async def _missing(request: Request, exc: NotFound) -> Response:
        if not request.url.path.startswith("/api") and "text/html" in request.headers.get("accept", ""):
            return templates.TemplateResponse(
                request, "pages/not_found.html", {"message": str(exc).capitalize()}, status_code=404
            )
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(BrokerUnavailable)
    async def _broker(_request: Request, exc: BrokerUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)
