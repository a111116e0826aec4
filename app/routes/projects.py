"""Project files: a transition's (or a render's) every parameter as JSON; importing one (API or upload)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.deps import Id, SessionDep
from app.errors import error_response
from app.templating import settings_context, templates
from core.params import whole_number
from services import presenters, projects
from services.errors import validation_errors
from services.rendering import get_render
from services.schemas import TransitionOut
from services.transitions import get_transition

router = APIRouter(prefix="/api", tags=["projects"])
pages = APIRouter(include_in_schema=False)

_PROJECT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"model": projects.Project, "description": "the project file (JSON, stable bytes)"}
}


def _file(project: projects.Project, download: bool) -> Response:
    headers = {}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="{projects.project_file_name(project.title)}"'
    return Response(projects.dump(project), media_type=projects.MEDIA_TYPE, headers=headers)


@router.get("/transitions/{transition_id}/project", responses=_PROJECT_RESPONSE, response_class=Response)
def transition_project(transition_id: Id, db: SessionDep, download: bool = False) -> Response:
    """The transition as a project file: model and weight revision, every setting, keyframes, title.

    `download=true` adds a Content-Disposition so a browser saves it as <title>.segue.json.
    """
    return _file(projects.project_of(get_transition(db, transition_id)), download)


@router.get("/renders/{render_id}/project", responses=_PROJECT_RESPONSE, response_class=Response)
def render_project(render_id: Id, db: SessionDep, download: bool = False) -> Response:
    """Exactly what a render used (its frozen settings, keyframes and weight revision) as a project file."""
    render = get_render(db, render_id)
    return _file(
        projects.project_of_render(render.transition.title, render.snapshot),
        download,
    )


def _refused(errors: list[dict[str, Any]]) -> Response:
    return error_response(422, validation_errors(errors))


def _body_error(message: str) -> list[dict[str, Any]]:
    return [{"loc": ("body",), "msg": f"Value error, {message}", "type": "value_error"}]


async def _read_limited(request: Request) -> bytes:
    """The request body, refused past MAX_PROJECT_BYTES without reading the rest."""
    limit = projects.MAX_PROJECT_BYTES
    declared = request.headers.get("content-length", "")
    if (size := whole_number(declared)) is not None and size > limit:
        raise projects.ProjectTooLarge(
            f"a project file is at most {limit // 1000} kB (got {size // 1000} kB)"
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise projects.ProjectTooLarge(f"a project file is at most {limit // 1000} kB")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(data: bytes) -> tuple[projects.Project | None, list[dict[str, Any]]]:
    try:
        return projects.load(data), []
    except ValidationError as exc:
        return None, [dict(e) for e in exc.errors()]
    except ValueError as exc:
        return None, _body_error(str(exc))


@router.post(
    "/projects",
    status_code=status.HTTP_201_CREATED,
    response_model=TransitionOut,
    responses={422: {"description": "not a project file, unknown fields, out of range, or too large"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Project"}}},
        }
    },
)
async def import_project(request: Request, db: SessionDep) -> Any:
    """A new transition from a project file (at most 1 MB and 200 keyframes), with the same timeline.

    Rendering it with the same model weights gives the same frame keys, so stored frames are reused;
    a different weight revision is reported in `warnings`.
    """
    try:
        data = await _read_limited(request)
    except projects.ProjectTooLarge as exc:
        return _refused(_body_error(str(exc)))
    project, errors = _parse(data)
    if project is None:
        return _refused(errors)
    try:
        return await run_in_threadpool(_import, db, project)
    except projects.ProjectRefused as exc:
        return _refused(exc.errors)


def _import(db: Any, project: projects.Project) -> TransitionOut:
    transition, warnings = projects.import_project(db, project)
    out = presenters.transition_out(db, transition)
    out.warnings.extend(warnings)
    return out


# ---------------------------------------------------------------- upload from the new-transition page


@pages.post("/projects/import", response_class=HTMLResponse)
async def upload_project(request: Request, db: SessionDep) -> Response:
    """The "Import a project file" form: a new transition and its page, or the errors next to the form."""
    errors: list[dict[str, Any]]
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("project")
    if not isinstance(upload, UploadFile) or not upload.filename:
        errors = _body_error("choose a project file (.segue.json) to import")
    elif upload.size is not None and upload.size > projects.MAX_PROJECT_BYTES:
        limit, got = projects.MAX_PROJECT_BYTES // 1000, upload.size // 1000
        errors = _body_error(f"a project file is at most {limit} kB (got {got} kB)")
    else:
        project, errors = _parse(await upload.read(projects.MAX_PROJECT_BYTES + 1))
        if project is not None:
            try:
                transition, _ = await run_in_threadpool(projects.import_project, db, project)
            except projects.ProjectRefused as exc:
                errors = exc.errors
            else:
                return RedirectResponse(f"/transitions/{transition.id}", status_code=303)
    context = {
        "values": {},
        "errors": {},
        "import_errors": [e["msg"] for e in validation_errors(errors)],
        **settings_context(),
    }
    return templates.TemplateResponse(request, "pages/new.html", context, status_code=422)
