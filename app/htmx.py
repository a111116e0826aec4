"""htmx answers: the same template renders the whole page for a normal request, or only the blocks an htmx
request swaps in (jinja2-fragments), so a swap and a full load are the same HTML."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from app.templating import templates


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def page_or_blocks(
    request: Request, template: str, context: dict[str, Any], blocks: list[str], status_code: int = 200
) -> Response:
    """The whole page, or for htmx these blocks of it (the first swapped in place, the rest out of band)."""
    if not is_htmx(request):
        return templates.TemplateResponse(request, template, context, status_code=status_code)
    return templates.TemplateResponse(request, template, context, status_code=status_code, block_names=blocks)


def go_to(request: Request, url: str) -> Response:
    """Send the browser to `url`: htmx follows HX-Redirect; a plain form post follows a 303."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)
