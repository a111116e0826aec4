"""The OpenAPI schema documents every error an operation can answer, with the shapes Segue sends.

FastAPI documents the success and (where there are parameters) a 422 in its own shape. Segue's errors are
added here once for every operation instead of on each route:
- 404 `{"detail": "render 7 does not exist"}` wherever the path names something;
- 409 `{"detail", "current", "changes"}` wherever a write names the version it was based on (If-Match);
- 422 `{"detail": [{field, msg, type, loc}], "errors": {field: msg}}` (app/errors.py) wherever a request
  carries parameters or a body;
- 503 `{"detail": "..."}` everywhere: the database or the render queue unreachable for a moment.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_REF = "#/components/schemas/"

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "title": "Error",
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"type": "string", "title": "Detail"}},
    },
    "FieldProblem": {
        "title": "FieldProblem",
        "type": "object",
        "required": ["field", "msg", "type", "loc"],
        "properties": {
            "field": {"type": "string"},
            "msg": {"type": "string"},
            "type": {"type": ["string", "null"]},
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        },
    },
    "ValidationErrors": {
        "title": "ValidationErrors",
        "type": "object",
        "required": ["detail", "errors"],
        "properties": {
            "detail": {"type": "array", "items": {"$ref": _REF + "FieldProblem"}},
            "errors": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Conflict": {
        "title": "Conflict",
        "type": "object",
        "required": ["detail"],
        "properties": {
            "detail": {"type": "string"},
            "current": {"type": ["object", "null"]},
            "changes": {"type": "array", "items": {"type": "object"}},
        },
    },
}


def _response(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _REF + schema}}}}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    schema.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            has_input = bool(parameters) or "requestBody" in operation
            if "{" in path:
                responses.setdefault(
                    "404", _response("not found: the path names nothing that exists", "Error")
                )
            if any(p.get("in") == "header" and p.get("name", "").lower() == "if-match" for p in parameters):
                responses.setdefault(
                    "409",
                    _response("the version named (If-Match or `version`) is not the current one", "Conflict"),
                )
            if has_input or "422" in responses:
                described = responses.get("422", {}).get("description", "")
                responses["422"] = _response(
                    described
                    if described and described != "Validation Error"
                    else "a parameter or the body is not allowed: each problem names its field",
                    "ValidationErrors",
                )
            if method == "post" and (path.endswith("/renders") or path.endswith("/retry")):
                responses.setdefault(
                    "429", _response("too many renders of this transition queued or running at once", "Error")
                )
            responses.setdefault(
                "503", _response("the database or the render queue is unreachable for a moment", "Error")
            )
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
