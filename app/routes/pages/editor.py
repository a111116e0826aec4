"""The transition editor's context and its answers (whole page or blocks), for every route that edits it."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from app import coviewing
from app.htmx import is_htmx, page_or_blocks
from app.routes.autofix import panel_context as autofix_panel
from app.routes.pages.forms import Errors
from app.templating import settings_context, templates
from core.timecode import format_time
from infra.bus import get_bus
from infra.tables import Render, Transition
from services import history, links, moce, presenters, rendering, scores, timing, transitions
from services.history import Conflict
from services.image_captions import shown_caption

#: The editor: one template, whole or by blocks (app/htmx.py).
EDITOR = "pages/transition.html"


def editor_context(db: Any, transition: Transition, render: Render | None = None) -> dict[str, Any]:
    render = render or presenters.latest_render(db, transition)
    out = presenters.transition_out(db, transition)
    stream_after = None
    if render is not None and not render.is_finished:
        # Taken before the frames are (re)read, so no event between the two reads is lost.
        stream_after = get_bus().last_id(render.id)
        db.expire_all()
    return {
        "stream_after": stream_after,
        "t": transition,
        "out": out,
        "render": render,
        "renders": list(reversed(transition.renders))[:20],
        "values": {},
        "errors": {},
        "kf_values": {},
        "kf_errors": {},
        "oob": False,
        "views": presenters,
        "moce_panel": lambda keyframe: moce.panel_context(db, keyframe),  # keyframe_concepts.html
        "image_caption": shown_caption,  # keyframe_image.html
        "clock": timing.clock(transition),  # seconds beside t (docs/animatics.md)
        "soundtrack": timing.soundtrack_view(transition),
        "format_time": format_time,
        **settings_context(),
        **(scores_context(db, render, live=not render.is_finished) if render is not None else {}),
        **_history_context(db, transition),
        **autofix_panel(db, transition),
    }


def chosen_render(db: Any, transition: Transition, render_id: int | None) -> Render | None:
    """The render a page asks for (`?render=`), if it is one of this transition's; None: the newest."""
    chosen = rendering.get_render(db, render_id) if render_id else None
    return chosen if chosen is not None and chosen.transition_id == transition.id else None


def render_panel_response(
    request: Request, db: Any, transition: Transition, render: Render | None, error: str | None = None
) -> Response:
    """The editor's render panel, showing `render` (None: the newest) and what went wrong, if anything."""
    context = editor_context(db, transition, render)
    context["render_error"] = error
    return templates.TemplateResponse(request, EDITOR, context, block_name="render_panel")


def _history_context(db: Any, transition: Transition) -> dict[str, Any]:
    """The history panel, the share panel and the co-viewing stream's starting point (app/routes/events)."""
    return {
        "history": history.panel(db, transition),
        "share_links": [links.link_out(link) for link in links.list_links(db, transition)],
        "new_link": None,
        "share_errors": {},
        "conflict": None,
        "live_after": coviewing.initial_cursor(db, transition.id).encode(),
    }


def scores_context(db: Any, render: Render, scorer: str | None = None, live: bool = False) -> dict[str, Any]:
    context = scores.plot_context(db, render, scorer)
    context.pop("render", None)
    return {**context, "live": live}


def conflict_response(request: Request, db: Any, exc: Conflict) -> Response:
    """A stale write from a page: the fresh state, with what changed meanwhile, inline (409)."""
    db.rollback()
    transition = transitions.get_transition(db, exc.transition_id)
    context = editor_context(db, transition)
    context.update(conflict=exc, oob=is_htmx(request))
    return page_or_blocks(request, EDITOR, context, ["header", "settings", "timeline", "history"], 409)


def timeline_response(
    request: Request,
    db: Any,
    transition: Transition,
    values: dict[str, Any] | None = None,
    errors: Errors | None = None,
) -> Response:
    """After a keyframe edit: back to the editor, or for htmx the timeline (with the form's errors)."""
    db.refresh(transition)
    if not errors and not is_htmx(request):
        return RedirectResponse(f"/transitions/{transition.id}", status_code=303)
    context = editor_context(db, transition)
    context.update(kf_values=values or {}, kf_errors=errors or {}, oob=is_htmx(request))
    # The header shows the version and the keyframe count: refresh it (and the history) out of band.
    return page_or_blocks(request, EDITOR, context, ["timeline", "header", "history"], 422 if errors else 200)
