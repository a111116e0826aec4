"""HTML pages and htmx fragments, one module per resource. Same services as the JSON API; one template
renders a page or one block (app/htmx.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.deps import QueryId, SessionDep
from app.routes.pages import keyframes, renders, transitions
from app.templating import templates
from services import presenters
from services import transitions as transition_services

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50  # transitions per page of the index


@router.get("/", response_class=HTMLResponse)
def index(request: Request, db: SessionDep, page: QueryId = 1) -> Response:
    # A constant number of queries per page, however many transitions and frames there are.
    total = transition_services.count_transitions(db)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)  # a stale link past the end shows the last page
    listed = transition_services.list_transitions(db, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    renders = presenters.latest_renders(db, listed)
    thumbs = presenters.thumbnails(db, list(renders.values()))
    rows = []
    for t in listed:
        render = renders.get(t.id)
        rows.append({"transition": t, "render": render, "thumbs": thumbs[render.id] if render else []})
    context = {"rows": rows, "page": page, "pages": pages, "total": total}
    return templates.TemplateResponse(request, "pages/index.html", context)


for part in (transitions, keyframes, renders):
    router.include_router(part.router)
