"""HTML pages and htmx fragments. Same services as the JSON API; one template renders a page or one block."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sse_starlette.sse import EventSourceResponse

from app import coviewing
from app.deps import AccessDep, Id, Index, QueryId, SessionDep, owner_only
from app.errors import form_errors
from app.htmx import is_htmx, page_or_blocks
from app.routes.autofix import panel_context as autofix_panel
from app.streams import render_events
from app.templating import fragment, settings_context, templates
from core import events
from core.params import KEYFRAME_FIELDS, NULLABLE_SETTINGS
from core.statuses import Status
from core.timecode import format_time
from infra.bus import get_bus
from infra.db import new_session
from infra.tables import Render, Transition
from services import (
    history,
    jobs,
    links,
    moce,
    presenters,
    rendering,
    scores,
    timing,
    transitions,
)
from services.errors import BrokerUnavailable, FieldError, NotFound, TooMany
from services.history import Conflict
from services.image_captions import shown_caption
from services.schemas import KeyframeCreate, KeyframeUpdate, TransitionCreate, TransitionUpdate

router = APIRouter(include_in_schema=False)
SCORES_EVERY_SECONDS = 1.0
PAGE_SIZE = 50  # transitions per page of the index

Errors = dict[str, str]


def _form_errors(exc: ValidationError) -> Errors:
    return form_errors(list(exc.errors()))  # type: ignore[arg-type]


async def _form(request: Request, fields: type[BaseModel]) -> dict[str, Any]:
    """Form fields that the model knows, with empty optional inputs left out (they mean 'default')."""
    form = await request.form()
    known = fields.model_fields
    data: dict[str, Any] = {}
    for name, value in form.items():
        if name not in known or not isinstance(value, str):
            continue
        # An emptied prompt is sent: a keyframe with an image may have none (docs/image-endpoints.md).
        keep_empty = ("negative_prompt", "title", "prompt")
        if value.strip() == "" and not known[name].is_required() and name not in keep_empty:
            continue
        data[name] = value
    return data


def _time_forms(values: dict[str, Any]) -> dict[str, Any]:
    """A position typed as a time ("0:02.5", "2.5s") or a hold in seconds ("1.5s"): the time forms."""
    position, hold = str(values.get("position", "")).strip(), str(values.get("hold_frames", "")).strip()
    if position and (":" in position or position.endswith("s")):
        values["time"] = values.pop("position")
    if hold and hold.endswith("s"):
        values["hold_seconds"] = values.pop("hold_frames").strip().removesuffix("s")
    return values


#: The editor: one template, whole or by blocks (app/htmx.py).
EDITOR = "pages/transition.html"


# ---------------------------------------------------------------- list and create


@router.get("/", response_class=HTMLResponse)
def index(request: Request, db: SessionDep, page: QueryId = 1) -> Response:
    # A constant number of queries per page, however many transitions and frames there are.
    total = transitions.count_transitions(db)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)  # a stale link past the end shows the last page
    listed = transitions.list_transitions(db, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    renders = presenters.latest_renders(db, listed)
    thumbs = presenters.thumbnails(db, list(renders.values()))
    rows = []
    for t in listed:
        render = renders.get(t.id)
        rows.append({"transition": t, "render": render, "thumbs": thumbs[render.id] if render else []})
    context = {"rows": rows, "page": page, "pages": pages, "total": total}
    return templates.TemplateResponse(request, "pages/index.html", context)


@router.get("/transitions/new", response_class=HTMLResponse)
def new_transition(request: Request) -> Response:
    return templates.TemplateResponse(
        request, "pages/new.html", {"values": {}, "errors": {}, **settings_context()}
    )


@router.post("/transitions", response_class=HTMLResponse)
async def create_transition(request: Request, db: SessionDep) -> Response:
    values = await _form(request, TransitionCreate)
    try:
        data = TransitionCreate(**values)
    except ValidationError as exc:
        context = {"values": values, "errors": _form_errors(exc), **settings_context()}
        return page_or_blocks(request, "pages/new.html", context, ["form"], 422)
    transition = transitions.create_transition(db, data)
    url = f"/transitions/{transition.id}"
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


# ---------------------------------------------------------------- the editor


def _editor_context(db: Any, transition: Transition, render: Render | None = None) -> dict[str, Any]:
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
        **(_scores_context(db, render, live=not render.is_finished) if render is not None else {}),
        **_history_context(db, transition),
        **autofix_panel(db, transition),
    }


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


def conflict_response(request: Request, db: Any, exc: Conflict) -> Response:
    """A stale write from a page: the fresh state, with what changed meanwhile, inline (409)."""
    db.rollback()
    transition = transitions.get_transition(db, exc.transition_id)
    context = _editor_context(db, transition)
    context.update(conflict=exc, oob=is_htmx(request))
    return page_or_blocks(request, EDITOR, context, ["header", "settings", "timeline", "history"], 409)


def _scores_context(db: Any, render: Render, scorer: str | None = None, live: bool = False) -> dict[str, Any]:
    context = scores.plot_context(db, render, scorer)
    context.pop("render", None)
    return {**context, "live": live}


@router.get("/renders/{render_id}/scores", response_class=HTMLResponse)
def scores_panel(request: Request, render_id: Id, db: SessionDep, scorer: str | None = None) -> Response:
    """The confusion map alone (switching scorer, or refreshing after a render)."""
    chosen = rendering.get_render(db, render_id)
    context = {"render": chosen, **_scores_context(db, chosen, scorer, live=not chosen.is_finished)}
    return templates.TemplateResponse(request, "partials/scores.html", context)


def _scores_html(render_id: int, can_edit: bool) -> str:
    with new_session() as db:
        chosen = rendering.get_render(db, render_id)
        context = _scores_context(db, chosen, live=True)
        return fragment("partials/scores.html", render=chosen, can_edit=can_edit, **context)


@router.get("/transitions/{transition_id}", response_class=HTMLResponse)
def editor(request: Request, transition_id: Id, db: SessionDep, render: QueryId | None = None) -> Response:
    transition = transitions.get_transition(db, transition_id)
    chosen = rendering.get_render(db, render) if render else None
    if chosen is not None and chosen.transition_id != transition.id:
        chosen = None
    return templates.TemplateResponse(
        request, "pages/transition.html", _editor_context(db, transition, chosen)
    )


@router.post("/transitions/{transition_id}/settings", response_class=HTMLResponse)
async def save_settings(request: Request, transition_id: Id, db: SessionDep, access: AccessDep) -> Response:
    transition = transitions.get_transition(db, transition_id)
    values = await _form(request, TransitionUpdate)
    context = _editor_context(db, transition)
    version = transition.version
    form = await request.form()  # an emptied spacing budget or shared step goes back to its default
    cleared = {name: None for name in NULLABLE_SETTINGS if str(form.get(name, "x")).strip() == ""}
    try:
        patch = TransitionUpdate(**values, **cleared)
        transitions.update_transition(db, transition, patch, expected=patch.version, actor=access.actor)
    except Conflict as exc:
        return conflict_response(request, db, exc)
    except ValidationError as exc:
        context.update(values=values, errors=_form_errors(exc))
        return page_or_blocks(request, EDITOR, context, ["settings"], 422)
    if not is_htmx(request):
        return RedirectResponse(f"/transitions/{transition.id}", status_code=303)
    context = _editor_context(db, transition)
    context.update(saved=transition.version != version, unchanged=transition.version == version, oob=True)
    return templates.TemplateResponse(
        request, "pages/transition.html", context, block_names=["settings", "timeline", "header", "history"]
    )


@router.post("/transitions/{transition_id}/keyframes", response_class=HTMLResponse)
async def add_keyframe(request: Request, transition_id: Id, db: SessionDep, access: AccessDep) -> Response:
    transition = transitions.get_transition(db, transition_id)
    values = _time_forms(await _form(request, KeyframeCreate))
    try:
        data = KeyframeCreate(**values)
        transitions.add_keyframe(db, transition, data, expected=data.version, actor=access.actor)
    except Conflict as exc:
        return conflict_response(request, db, exc)
    except ValidationError as exc:
        return _timeline(request, db, transition, values, _form_errors(exc))
    except FieldError as exc:
        return _timeline(request, db, transition, values, {exc.field: exc.message})
    return _timeline(request, db, transition)


@router.post("/keyframes/{keyframe_id}", response_class=HTMLResponse)
async def edit_keyframe(request: Request, keyframe_id: Id, db: SessionDep, access: AccessDep) -> Response:
    keyframe = transitions.get_keyframe(db, keyframe_id)
    transition = keyframe.transition
    values = _time_forms(await _form(request, KeyframeUpdate))
    form = await request.form()  # an emptied keyframe setting (seed, frames, ...) goes back to "not set"
    cleared = {name: None for name in KEYFRAME_FIELDS if str(form.get(name, "x")).strip() == ""}
    concepts, concept_values = _concepts_form(form)  # MoCE: concepts.on, concepts.first, ...
    values.update(concept_values)
    try:
        given = {k: v for k, v in values.items() if not k.startswith("concepts.")}
        patch = KeyframeUpdate(**given, **cleared, **concepts)
        transitions.update_keyframe(db, keyframe, patch, expected=patch.version, actor=access.actor)
    except Conflict as exc:
        return conflict_response(request, db, exc)
    except ValidationError as exc:
        return _timeline(
            request,
            db,
            transition,
            {f"{keyframe_id}.{k}": v for k, v in values.items()},
            {f"{keyframe_id}.{k}": v for k, v in _form_errors(exc).items()},
        )
    except FieldError as exc:
        return _timeline(request, db, transition, {}, {f"{keyframe_id}.{exc.field}": exc.message})
    return _timeline(request, db, transition)


def _concepts_form(form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The row's "Sequential concepts" fields as the keyframe's `concepts` (keyframe_concepts.html).

    Returns ({"concepts": value} when the form has the section, else {}; the fields as typed, to show them
    again). Unticked: null (off). Ticked: the concepts, empty descriptions left out, an empty switch step
    meaning "auto".
    """
    if "concepts.on" not in form:
        return {}, {}
    typed = {n: str(form.get(n, "")) for n in form if n.startswith("concepts.") and n != "concepts.on"}
    on = "true" in form.getlist("concepts.on")
    typed["concepts.on"] = "true" if on else "false"
    if not on:
        return {"concepts": None}, typed
    value: dict[str, Any] = {}
    for name in ("first", "first_description", "second", "second_description", "switch_step"):
        text = typed.get(f"concepts.{name}", "").strip()
        if text or name in ("first", "second"):
            value[name] = text
    value.setdefault("switch_step", "auto")
    return {"concepts": value}, typed


@router.get("/keyframes/{keyframe_id}/concepts", response_class=HTMLResponse)
def keyframe_concepts(request: Request, keyframe_id: Id, db: SessionDep) -> Response:
    """The switch step search of a keyframe's sequential concepts: the fragment its row polls."""
    keyframe = transitions.get_keyframe(db, keyframe_id)
    context = {"moce_status_only": True, "panel": moce.panel_context(db, keyframe)}
    return templates.TemplateResponse(request, "partials/keyframe_concepts.html", context)


@router.post("/keyframes/{keyframe_id}/delete", response_class=HTMLResponse)
async def remove_keyframe(request: Request, keyframe_id: Id, db: SessionDep, access: AccessDep) -> Response:
    keyframe = transitions.get_keyframe(db, keyframe_id)
    transition = keyframe.transition
    version = (await request.form()).get("version")
    expected = int(version) if isinstance(version, str) and version.isdigit() else None
    try:
        transitions.delete_keyframe(db, keyframe, expected=expected, actor=access.actor)
    except Conflict as exc:
        return conflict_response(request, db, exc)
    except FieldError as exc:
        return _timeline(request, db, transition, {}, {f"{keyframe_id}.keyframe": exc.message})
    return _timeline(request, db, transition)


def _timeline(
    request: Request,
    db: Any,
    transition: Transition,
    values: dict[str, Any] | None = None,
    errors: Errors | None = None,
) -> Response:
    db.refresh(transition)
    if not errors and not is_htmx(request):
        return RedirectResponse(f"/transitions/{transition.id}", status_code=303)
    context = _editor_context(db, transition)
    context.update(kf_values=values or {}, kf_errors=errors or {}, oob=is_htmx(request))
    # The header shows the version and the keyframe count: refresh it (and the history) out of band.
    return page_or_blocks(request, EDITOR, context, ["timeline", "header", "history"], 422 if errors else 200)


@router.post("/transitions/{transition_id}/delete")
@owner_only
def remove_transition(request: Request, transition_id: Id, db: SessionDep) -> Response:
    transitions.delete_transition(db, transitions.get_transition(db, transition_id))
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": "/"})
    return RedirectResponse("/", status_code=303)


# ---------------------------------------------------------------- renders


@router.post("/transitions/{transition_id}/render", response_class=HTMLResponse)
def render(request: Request, transition_id: Id, db: SessionDep, access: AccessDep) -> Response:
    transition = transitions.get_transition(db, transition_id)
    error = None
    started: Render | None
    try:
        started = rendering.start_render(db, transition, access.link_id)
    except (BrokerUnavailable, FieldError, TooMany) as exc:  # FieldError: too many frames, or over a quota
        error = str(exc)
        started = presenters.latest_render(db, transition)
    context = _editor_context(db, transition, started)
    context["render_error"] = error
    return templates.TemplateResponse(request, "pages/transition.html", context, block_name="render_panel")


@router.post("/renders/{render_id}/cancel", response_class=HTMLResponse)
def cancel(request: Request, render_id: Id, db: SessionDep) -> Response:
    chosen = rendering.get_render(db, render_id)
    error = None
    try:
        rendering.cancel_render(db, chosen)
    except FieldError as exc:
        error = exc.message
    db.refresh(chosen)
    context = _editor_context(db, chosen.transition, chosen)
    context["render_error"] = error
    return templates.TemplateResponse(request, "pages/transition.html", context, block_name="render_panel")


@router.post("/renders/{render_id}/retry", response_class=HTMLResponse)
def retry(request: Request, render_id: Id, db: SessionDep, access: AccessDep) -> Response:
    """The Retry button of a failed or cancelled render: its missing frames are queued again."""
    chosen = rendering.get_render(db, render_id)
    error = None
    try:
        jobs.retry_render(db, chosen, access.link_id)
    except (BrokerUnavailable, FieldError, TooMany) as exc:
        error = exc.message if isinstance(exc, FieldError) else str(exc)
    db.refresh(chosen)
    context = _editor_context(db, chosen.transition, chosen)
    context["render_error"] = error
    return templates.TemplateResponse(request, "pages/transition.html", context, block_name="render_panel")


@router.get("/renders/{render_id}/stream")
async def render_stream(
    request: Request,
    render_id: Id,
    db: SessionDep,
    access: AccessDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: str | None = None,
) -> EventSourceResponse:
    """The film strip's live feed: each event is the HTML for the element it updates.

    `after` is the newest event id when the page was drawn: the page already shows everything before it.
    """
    chosen = rendering.get_render(db, render_id)
    transition_id = chosen.transition_id
    db.close()

    async def stream() -> AsyncIterator[dict[str, Any]]:
        scored_at, stale = 0.0, False
        async for item in render_events(request, render_id, last_event_id or after):
            messages = _stream_messages(item.event, render_id, transition_id, can_edit=access.can_edit)
            stale = stale or isinstance(item.event, events.FrameDone)
            # The plots are redrawn from the database at most once a second (and at the end), not per frame.
            now = time.monotonic()
            if stale and (now - scored_at >= SCORES_EVERY_SECONDS or item.event.terminal):
                html = await asyncio.to_thread(_scores_html, render_id, access.can_edit)
                messages.insert(-1 if item.event.terminal else len(messages), ("scores", html))
                scored_at, stale = now, False
            for name, html in messages:
                yield {"id": item.id, "event": name, "data": html}

    return EventSourceResponse(stream(), ping=15)


def _stream_messages(
    event: events.RenderEvent, render_id: int, transition_id: int, can_edit: bool = True
) -> list[tuple[str, str]]:
    """The (SSE event name, HTML) pairs that show one render event on the page."""
    match event:
        case events.FrameDone():
            tile = fragment(
                "partials/frame_tile.html",
                render_id=render_id,
                index=event.index,
                t=event.t,
                url=event.url,
                status=Status.DONE,
            )
            return [(f"frame-{event.index}", tile)]
        case events.Preview():
            return [
                (
                    f"frame-{index}",
                    fragment(
                        "partials/frame_tile.html",
                        render_id=render_id,
                        index=index,
                        t=None,
                        url=image,
                        status="preview",
                        step=event.step,
                        steps=event.steps,
                    ),
                )
                for index, image in zip(event.indices, event.images, strict=False)
            ]
        case events.Progress():
            return [
                ("progress", fragment("partials/progress.html", p=event.payload())),
                (
                    "render-status",
                    fragment("partials/render_status.html", status=event.status, render_id=render_id),
                ),
            ]
        case events.Finished():
            stats = event.stats
            done = stats.frames_computed + stats.frames_reused if stats else 0
            final = {"done": done, "total": stats.frames_total if stats else done, "status": event.name}
            outcome = fragment(
                "partials/render_done.html",
                outcome=event.name,
                data=event.payload(),
                transition_id=transition_id,
                render_id=render_id,
                can_edit=can_edit,
            )
            return [
                ("progress", fragment("partials/progress.html", p=final)),
                ("status", outcome),
                ("end", json.dumps({"status": event.name})),
            ]
    return []


@router.get("/frames/{render_id}/{index}", response_class=HTMLResponse)
def frame_detail(request: Request, render_id: Id, index: Index, db: SessionDep) -> Response:
    chosen = rendering.get_render(db, render_id)
    frame = next((f for f in chosen.frames if f.index == index), None)
    if frame is None:
        raise NotFound("frame", index)
    context = {
        "render": chosen,
        "frame": frame,
        "url": presenters.frame_url(frame),
        "p": chosen.params,
        "transition": chosen.transition,
        "neighbours": (
            index - 1 if index > 0 else None,
            index + 1 if index + 1 < chosen.frames_total else None,
        ),
        "neighbour_urls": [
            presenters.frame_url(f) if f else None
            for f in (
                next((f for f in chosen.frames if f.index == index - 1), None),
                next((f for f in chosen.frames if f.index == index + 1), None),
            )
        ],
        "flags": scores.frame_flags(db, chosen, index),
        # A jump from this frame to the next is bridged between the two frames, not on this one
        "insert_t": scores.insert_position(db, chosen, frame),
    }
    return page_or_blocks(request, "pages/frame.html", context, ["detail"])
