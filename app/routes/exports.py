"""Exports of finished renders: start one (JSON API or the render panel's form), follow it, download it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from app.deps import Id, SessionDep
from app.downloads import export_response
from app.errors import form_errors
from app.templating import templates
from core.statuses import Status
from infra.tables import Export, Transition
from services import exports as services
from services.errors import BrokerUnavailable, FieldError, NotFound
from services.rendering import get_render

router = APIRouter(prefix="/api", tags=["exports"])
pages = APIRouter(include_in_schema=False)


@router.post(
    "/renders/{render_id}/exports",
    response_model=services.ExportOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": services.ExportOut, "description": "an identical export exists and is done"},
        422: {"description": "the render is not done, or an option is out of range"},
    },
)
def create_export(render_id: Id, options: services.ExportOptions, db: SessionDep) -> Any:
    """Queue an export of a finished render; an identical request returns the cached export.

    202 with `url: null` while it is queued or running; 200 with its `url` when it is already done.
    """
    export, _queued = services.request_export(db, get_render(db, render_id), options)
    out = services.export_out(export)
    code = status.HTTP_200_OK if export.status == Status.DONE else status.HTTP_202_ACCEPTED
    return JSONResponse(out.model_dump(mode="json"), status_code=code)


@router.get("/renders/{render_id}/exports", response_model=list[services.ExportOut])
def list_exports(render_id: Id, db: SessionDep) -> list[services.ExportOut]:
    return [services.export_out(e) for e in services.list_exports(db, get_render(db, render_id))]


@router.get("/exports/{export_id}", response_model=services.ExportOut)
def get_export(export_id: Id, db: SessionDep) -> services.ExportOut:
    return services.export_out(services.get_export(db, export_id))


@router.get(
    "/exports/{export_id}/file",
    response_class=FileResponse,
    responses={200: {"content": {info.media_type: {} for info in services.FORMATS.values()}}},
)
def download_export(export_id: Id, request: Request, db: SessionDep) -> Response:
    """The exported file, as an attachment named after the transition and the render."""
    export = services.get_export(db, export_id)
    if export.status != Status.DONE or not export.file_name:
        raise NotFound("file of export", export_id)
    title = _title(db, export)
    try:
        return export_response(
            export.file_name,
            media_type=services.FORMATS[export.format].media_type,
            headers={
                "Content-Disposition": services.content_disposition(title, export.render_id, export.format)
            },
            range_header=request.headers.get("range"),
        )
    except FileNotFoundError:
        raise NotFound("file of export", export_id) from None


def _title(db: Any, export: Export) -> str:
    render = get_render(db, export.render_id)
    transition = db.get(Transition, render.transition_id)
    return transition.title if transition is not None else ""


# ---------------------------------------------------------------- the render panel's export form (htmx)


def _fragment(request: Request, context: dict[str, Any], status_code: int = 200) -> Response:
    return templates.TemplateResponse(
        request,
        "partials/export.html",
        {"export_formats": services.FORMATS, **context},
        status_code=status_code,
        block_name="export_status",
    )


@pages.get("/renders/{render_id}/export-panel", response_class=HTMLResponse)
def export_panel(request: Request, render_id: Id, db: SessionDep) -> Response:
    """The export form of a render (empty until it is done), with its earlier exports."""
    render = get_render(db, render_id)
    context = {
        "render": render,
        "t": render.transition,
        "export_formats": services.FORMATS,
        "exports": [services.export_out(e) for e in services.list_exports(db, render)],
    }
    return templates.TemplateResponse(request, "partials/export.html", context, block_name="export_panel")


@pages.post("/renders/{render_id}/exports", response_class=HTMLResponse)
async def start_export(request: Request, render_id: Id, db: SessionDep) -> Response:
    form = await request.form()
    values: dict[str, Any] = {
        name: value for name, value in form.items() if isinstance(value, str) and value.strip() != ""
    }
    # Unchecked checkboxes are not sent at all: they mean False.
    values.setdefault("hold_keyframes", False)
    values.setdefault("loop", False)
    values = {k: v for k, v in values.items() if k in services.ExportOptions.model_fields}
    try:
        options = services.ExportOptions(**values)
        export, _ = services.request_export(db, get_render(db, render_id), options)
    except ValidationError as exc:
        return _fragment(request, {"export_errors": form_errors(list(exc.errors()))}, 422)  # type: ignore[arg-type]
    except FieldError as exc:
        return _fragment(request, {"export_errors": {exc.field: exc.message}}, 422)
    except BrokerUnavailable as exc:  # shown in the panel (htmx swaps no 5xx), like a render's queue error
        return _fragment(request, {"export_errors": {"queue": str(exc)}})
    return _fragment(request, {"export": services.export_out(export)})


@pages.get("/exports/{export_id}/status", response_class=HTMLResponse)
def export_status(request: Request, export_id: Id, db: SessionDep) -> Response:
    """Polled by the panel while an export is queued or running; stops polling once it is finished."""
    return _fragment(request, {"export": services.export_out(services.get_export(db, export_id))})
