"""The loop: Fix (proposals for one problem) and Autopilot, as JSON API and as the editor's panel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from app.deps import TRANSITION_OF, AccessDep, Id, SessionDep
from app.errors import form_errors
from app.htmx import go_to, is_htmx
from app.templating import templates
from core.params import MAX_ID, whole_number
from infra.tables import Autofix, Transition
from services import autofix as services
from services import rendering
from services import transitions as transition_services
from services.errors import BrokerUnavailable, Busy, FieldError, TooMany

router = APIRouter(prefix="/api", tags=["autofix"])
pages = APIRouter(include_in_schema=False)

# A share link may follow and drive the autofixes of its own transition (writes need an edit link).
TRANSITION_OF.setdefault(
    "autofix_id", lambda db, ident: db.scalar(select(Autofix.transition_id).where(Autofix.id == ident))
)


class FixCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    problem: str = Field(
        min_length=1, max_length=64, description='a problem id from /scores, e.g. "jump-9-10"'
    )


class FixApply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    proposal: str = Field(min_length=1, max_length=64, description='a proposal id, e.g. "bridge-0"')


class FixApplied(BaseModel):
    render_id: int
    version: int


@router.post(
    "/transitions/{transition_id}/autofix",
    response_model=services.AutofixStarted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: {"description": "an autofix is already running on this transition"}},
)
def start_autofix(
    transition_id: Id, db: SessionDep, access: AccessDep, data: services.AutofixCreate | None = None
) -> services.AutofixStarted:
    """Start the autopilot: rounds of "score the latest render, take the worst problem, probe fixes, apply
    the best, re-render what changed", until `target_smoothness`, `budget_frames`, `max_rounds`, or a round
    that does not improve the worst problem (that round's edit is undone).
    Follow with GET /api/autofix/{id}."""
    transition = transition_services.get_transition(db, transition_id)
    row = services.start_autopilot(db, transition, data or services.AutofixCreate(), access.link_id)
    return services.AutofixStarted(id=row.id, status=services.public_status(row.status))


@router.get("/autofix/{autofix_id}", response_model=services.AutofixOut)
def get_autofix(autofix_id: Id, db: SessionDep) -> services.AutofixOut:
    """An autopilot's rounds so far ({problem, fix, edit_version, before, after}) and why it stopped; a
    Fix's proposals, best first."""
    return services.autofix_out(services.get_autofix(db, autofix_id))


@router.post("/autofix/{autofix_id}/cancel", response_model=services.AutofixOut)
def cancel_autofix(autofix_id: Id, db: SessionDep) -> services.AutofixOut:
    """Stop it; a round's render under way is cancelled (the round's edit stays in the history)."""
    return services.autofix_out(services.cancel(db, services.get_autofix(db, autofix_id)))


@router.post(
    "/renders/{render_id}/problems/fixes",
    response_model=services.AutofixStarted,
    status_code=status.HTTP_202_ACCEPTED,
)
def request_fix(render_id: Id, data: FixCreate, db: SessionDep, access: AccessDep) -> services.AutofixStarted:
    """Probe up to three fixes for one problem of a render (a bridge prompt at its t, more frames there);
    GET /api/autofix/{id} lists them with their probe thumbnail and predicted change, best first."""
    render = rendering.get_render(db, render_id)
    transition = transition_services.get_transition(db, render.transition_id)
    row = services.request_fix(db, transition, render, data.problem, access.link_id)
    return services.AutofixStarted(id=row.id, status=services.public_status(row.status))


@router.post("/autofix/{autofix_id}/apply", response_model=FixApplied, status_code=status.HTTP_201_CREATED)
def apply_fix(autofix_id: Id, data: FixApply, db: SessionDep, access: AccessDep) -> FixApplied:
    """Apply one proposal of a Fix: one undoable edit, then a render that computes only what it changed."""
    row = services.get_autofix(db, autofix_id)
    render = services.apply_fix(db, row, data.proposal, actor=access.actor, link_id=access.link_id)
    return FixApplied(render_id=render.id, version=render.transition_version)


# ---------------------------------------------------------------- the editor's panel (htmx)


def panel_context(db: Any, transition: Transition, **extra: Any) -> dict[str, Any]:
    """What templates/partials/autofix.html draws: the latest autopilot and the latest Fix."""
    pilot = services.latest(db, transition.id, "autopilot")
    fix = services.latest(db, transition.id, "fix")
    return {
        "t": transition,
        "af_pilot": services.autofix_out(pilot) if pilot else None,
        "af_fix": services.autofix_out(fix) if fix else None,
        "af_active": any(r is not None and r.status in services.ACTIVE for r in (pilot, fix)),
        "af_error": None,
        "af_defaults": {
            "max_rounds": services.DEFAULT_ROUNDS,
            "budget_frames": services.default_budget(transition),
        },
        "af_max_rounds": services.MAX_ROUNDS,
        "describe": services.describe_problem,
        **extra,
    }


def _panel(request: Request, context: dict[str, Any], status_code: int = 200) -> Response:
    return templates.TemplateResponse(
        request, "partials/autofix.html", context, block_name="panel", status_code=status_code
    )


def _back(request: Request, transition_id: int, context: dict[str, Any], status_code: int = 200) -> Response:
    if not is_htmx(request):
        return RedirectResponse(f"/transitions/{transition_id}#autofix", status_code=303)
    return _panel(request, context, status_code)


@pages.get("/transitions/{transition_id}/autofix/panel", response_class=HTMLResponse)
def panel(request: Request, transition_id: Id, db: SessionDep) -> Response:
    """The panel alone: polled every second while an autopilot or a Fix is under way (co-viewers too)."""
    transition = transition_services.get_transition(db, transition_id)
    return _panel(request, panel_context(db, transition))


@pages.post("/transitions/{transition_id}/autofix", response_class=HTMLResponse)
async def start_page(request: Request, transition_id: Id, db: SessionDep, access: AccessDep) -> Response:
    transition = transition_services.get_transition(db, transition_id)
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str) and v.strip()}
    error = None
    try:
        data = services.AutofixCreate.model_validate(values)
        services.start_autopilot(db, transition, data, access.link_id)
    except ValidationError as exc:
        error = "; ".join(form_errors(list(exc.errors())).values())  # type: ignore[arg-type]
    except (Busy, BrokerUnavailable) as exc:
        error = str(exc)
    return _back(request, transition.id, panel_context(db, transition, af_error=error), 422 if error else 200)


@pages.post("/transitions/{transition_id}/fixes", response_class=HTMLResponse)
async def fix_page(request: Request, transition_id: Id, db: SessionDep, access: AccessDep) -> Response:
    """A problem's Fix button: probe its fixes on a worker; the panel shows them as they arrive."""
    transition = transition_services.get_transition(db, transition_id)
    form = await request.form()
    error = None
    try:
        render_id = whole_number(form.get("render_id"))
        if render_id is None or not 1 <= render_id <= MAX_ID:
            raise FieldError("render_id", "render_id must name a render of this transition")
        render = rendering.get_render(db, render_id)
        services.request_fix(db, transition, render, str(form.get("problem") or ""), access.link_id)
    except (FieldError, BrokerUnavailable) as exc:
        error = getattr(exc, "message", None) or str(exc)
    return _back(request, transition.id, panel_context(db, transition, af_error=error), 422 if error else 200)


@pages.post("/autofix/{autofix_id}/cancel", response_class=HTMLResponse)
def cancel_page(request: Request, autofix_id: Id, db: SessionDep) -> Response:
    row = services.get_autofix(db, autofix_id)
    transition = transition_services.get_transition(db, row.transition_id)
    error = None
    try:
        services.cancel(db, row)
    except FieldError as exc:
        error = exc.message
    return _back(request, transition.id, panel_context(db, transition, af_error=error), 422 if error else 200)


@pages.post("/autofix/{autofix_id}/apply", response_class=HTMLResponse)
async def apply_page(request: Request, autofix_id: Id, db: SessionDep, access: AccessDep) -> Response:
    """Apply a proposal; the editor reloads on the new render (only the changed frames compute)."""
    row = services.get_autofix(db, autofix_id)
    transition = transition_services.get_transition(db, row.transition_id)
    form = await request.form()
    try:
        render = services.apply_fix(
            db, row, str(form.get("proposal") or ""), actor=access.actor, link_id=access.link_id
        )
    except (FieldError, BrokerUnavailable, TooMany) as exc:
        error = getattr(exc, "message", None) or str(exc)
        db.rollback()
        return _back(request, transition.id, panel_context(db, transition, af_error=error), 422)
    return go_to(request, f"/transitions/{transition.id}?render={render.id}")
