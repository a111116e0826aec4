"""Studies for researchers (docs/studies.md): the API and the /studies pages. The owner's only: no share link
and no participant token opens any of these (`owner_only`; participant tokens are not credentials at all)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy import select

from app.deps import Id, QueryId, SessionDep, owner_only
from app.errors import form_errors
from app.templating import templates
from core.params import whole_number
from core.studies import SAMPLERS, TASKS
from infra.tables import Render, Study, Transition
from services import studies, study_blocks
from services.errors import FieldError
from services.presenters import frame_url

router = APIRouter(tags=["studies"])
pages = APIRouter(include_in_schema=False)

#: The most finished renders the create form offers.
RENDER_CHOICES = 100


@router.post("/api/studies", response_model=studies.StudyOut, status_code=status.HTTP_201_CREATED)
@owner_only
def create_study(data: studies.StudyCreate, db: SessionDep) -> studies.StudyOut:
    """A study of finished renders: `rate` (1-5), `mark` (where <concept> first appears), `triplets` (the odd
    one of three frames, `triplets` of them from a sampler seeded by `seed`). Its items are made now."""
    return studies.study_out(db, studies.create_study(db, data))


@router.get("/api/studies", response_model=list[studies.StudyOut])
@owner_only
def list_studies(db: SessionDep) -> list[studies.StudyOut]:
    return [studies.study_out(db, s) for s in studies.list_studies(db)]


@router.get("/api/studies/{study_id}", response_model=studies.StudyOut)
@owner_only
def get_study(study_id: Id, db: SessionDep) -> studies.StudyOut:
    return studies.study_out(db, studies.get_study(db, study_id))


@router.post(
    "/api/studies/{study_id}/participants",
    response_model=studies.ParticipantOut,
    status_code=status.HTTP_201_CREATED,
)
@owner_only
def add_participant(
    study_id: Id, db: SessionDep, data: studies.ParticipantCreate | None = None
) -> studies.ParticipantOut:
    """A link for one person: `url` (/p/<token>) opens their items; it answers, it reads nothing else."""
    participant = studies.add_participant(
        db, studies.get_study(db, study_id), data or studies.ParticipantCreate(label="")
    )
    return studies.participant_out(participant)


@router.get("/api/studies/{study_id}/participants", response_model=list[studies.ParticipantOut])
@owner_only
def list_participants(study_id: Id, db: SessionDep) -> list[studies.ParticipantOut]:
    study = studies.get_study(db, study_id)
    counts = studies.answered_counts(db, study)
    return [studies.participant_out(p, counts.get(p.id, 0)) for p in study.participants]


@router.get("/api/studies/{study_id}/results")
@owner_only
def results(study_id: Id, db: SessionDep) -> dict[str, Any]:
    """Agreement between people (alpha for ratings, split-half for triplets, the marks' histogram per render)
    and between people and each distance stored for the study's renders."""
    return studies.results(db, studies.get_study(db, study_id))


@router.get("/api/studies/{study_id}/answers")
@owner_only
def answers_json(study_id: Id, db: SessionDep) -> list[dict[str, Any]]:
    """Every answer, one object each (the same rows as answers.csv)."""
    return studies.answer_rows(db, studies.get_study(db, study_id))


@router.get(
    "/api/studies/{study_id}/answers.csv",
    response_class=Response,
    responses={
        200: {"description": "one row per answer", "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
@owner_only
def answers_csv(study_id: Id, db: SessionDep) -> Response:
    """Every answer as CSV: participant_id, participant, item_id, kind, render_id, frames (space separated),
    answer, comment, ms, answered_at."""
    study = studies.get_study(db, study_id)
    body = studies.answers_csv(studies.answer_rows(db, study))
    headers = {"Content-Disposition": f'attachment; filename="study-{study.id}-answers.csv"'}
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


# ---------------------------------------------------------------- pages


def _render_choices(db: Any) -> list[dict[str, Any]]:
    rows = db.execute(
        select(Render, Transition.title)
        .join(Transition, Transition.id == Render.transition_id)
        .where(Render.status == "done")
        .order_by(Render.id.desc())
        .limit(RENDER_CHOICES)
    ).all()
    out = []
    for render, title in rows:
        done = [f for f in render.frames if f.status == "done"]
        out.append(
            {"render": render, "title": title or f"transition {render.transition_id}", "frames": len(done),
             "thumb": frame_url(done[0]) if done else None}
        )  # fmt: skip
    return out


def _list_page(request: Request, db: Any, errors: dict[str, str] | None = None,
               values: dict[str, Any] | None = None, code: int = 200) -> Response:  # fmt: skip
    context = {
        "studies": studies.list_studies(db),
        "choices": _render_choices(db),
        "tasks": TASKS,
        "samplers": SAMPLERS,
        "errors": errors or {},
        "values": values or {},
        "max_instructions": studies.MAX_INSTRUCTIONS,
    }
    return templates.TemplateResponse(request, "studies/list.html", context, status_code=code)


@pages.get("/studies", response_class=HTMLResponse)
@owner_only
def studies_page(request: Request, db: SessionDep, render: QueryId | None = None) -> Response:
    """Every study, and the form that makes one (`?render=7` ticks that render)."""
    return _list_page(request, db, values={"render_ids": [render] if render else []})


@pages.post("/studies", response_class=HTMLResponse)
@owner_only
async def create_study_form(request: Request, db: SessionDep) -> Response:
    form = await request.form()
    values: dict[str, Any] = {
        "title": str(form.get("title") or ""),
        "render_ids": [n for v in form.getlist("render_ids") if (n := whole_number(v)) is not None],
        "tasks": [str(v) for v in form.getlist("tasks")],
        "concept": str(form.get("concept") or "").strip() or None,
        "triplets": str(form.get("triplets") or "").strip() or None,
        "seed": str(form.get("seed") or "").strip() or "0",
        "instructions": str(form.get("instructions") or ""),
        "sampler": str(form.get("sampler") or "uniform"),
    }
    try:
        study = studies.create_study(db, studies.StudyCreate.model_validate(values))
    except ValidationError as exc:
        return _list_page(request, db, form_errors([dict(e) for e in exc.errors()]), values, 422)
    except FieldError as exc:
        return _list_page(request, db, {exc.field: exc.message}, values, 422)
    return RedirectResponse(f"/studies/{study.id}", status_code=status.HTTP_303_SEE_OTHER)


PLOT_WIDTH = 600
ROW_HEIGHT = 30
HISTOGRAM_WIDTH = 1000
HISTOGRAM_HEIGHT = 90
#: Frames shown under a mark histogram, evenly spread over the render.
STRIP_FRAMES = 10


def _accuracy_plot(found: dict[str, Any]) -> dict[str, Any]:
    """Bars of triplet accuracy, one per distance and one for people, with chance and people's level."""
    bars = [{"name": "people (leave one out)", "value": found["triplets"]["people_accuracy"], "people": True}]
    bars += [
        {"name": d["label"], "value": d["triplet_accuracy"], "people": False} for d in found["distances"]
    ]
    for row, bar in enumerate(bars):
        bar["y"] = row * ROW_HEIGHT
        bar["width"] = round((bar["value"] or 0.0) * PLOT_WIDTH, 1)
    return {
        "bars": bars,
        "width": PLOT_WIDTH,
        "row": ROW_HEIGHT,
        "height": len(bars) * ROW_HEIGHT,
        "chance_x": round(PLOT_WIDTH / 3, 1),
    }


def _mark_plots(db: Any, study: Study, found: dict[str, Any]) -> list[dict[str, Any]]:
    plots = []
    for entry in found["marks"]:
        render = db.get(Render, entry["render_id"])
        done = [f for f in render.frames if f.status == "done"] if render else []
        step = max(1, len(done) // STRIP_FRAMES)
        top = max(entry["histogram"], default=0) or 1
        width = HISTOGRAM_WIDTH / len(entry["histogram"])
        plots.append(
            {
                **entry,
                "strip": [{"url": frame_url(f), "t": f.t} for f in done[::step]][:STRIP_FRAMES],
                "bars": [
                    {
                        "x": round(i * width, 1),
                        "width": round(width - 2, 1),
                        "count": n,
                        "height": round(n / top * (HISTOGRAM_HEIGHT - 10), 1),
                        "y": round(HISTOGRAM_HEIGHT - n / top * (HISTOGRAM_HEIGHT - 10), 1),
                    }
                    for i, n in enumerate(entry["histogram"])
                ],  # fmt: skip
                "median_x": None if entry["median"] is None else round(entry["median"] * HISTOGRAM_WIDTH, 1),
                "width": HISTOGRAM_WIDTH,
                "height": HISTOGRAM_HEIGHT,
            }
        )
    return plots


def _study_page(request: Request, db: Any, study: Study, errors: dict[str, str] | None = None,
                code: int = 200) -> Response:  # fmt: skip
    found = studies.results(db, study)
    counts = studies.answered_counts(db, study)
    base = str(request.base_url).rstrip("/")
    context = {
        "study": study,
        "participants": [
            {"p": p, "answered": counts.get(p.id, 0), "link": f"{base}/p/{p.token}"}
            for p in study.participants
        ],
        "results": found,
        "plot": _accuracy_plot(found),
        "mark_plots": _mark_plots(db, study, found),
        "errors": errors or {},
        **study_blocks.page_context(found, study_blocks.get_job(db, study), study),
    }
    return templates.TemplateResponse(request, "studies/study.html", context, status_code=code)


@pages.get("/studies/{study_id}", response_class=HTMLResponse)
@owner_only
def study_page(request: Request, study_id: Id, db: SessionDep) -> Response:
    return _study_page(request, db, studies.get_study(db, study_id))


@pages.post("/studies/{study_id}/participants", response_class=HTMLResponse)
@owner_only
async def add_participant_form(request: Request, study_id: Id, db: SessionDep) -> Response:
    study = studies.get_study(db, study_id)
    form = await request.form()
    try:
        data = studies.ParticipantCreate.model_validate({"label": str(form.get("label") or "")})
        studies.add_participant(db, study, data)
    except ValidationError as exc:
        return _study_page(request, db, study, form_errors([dict(e) for e in exc.errors()]), 422)
    except FieldError as exc:
        return _study_page(request, db, study, {exc.field: exc.message}, 422)
    return RedirectResponse(f"/studies/{study.id}#participants", status_code=status.HTTP_303_SEE_OTHER)
