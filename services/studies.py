"""Studies (docs/studies.md): renders and tasks, participant links, answers, and how far people agree.

A study is made once from its renders and tasks: one `rate` item and one `mark` item per render, and
`triplets` items from core.studies.sample_triplets (seeded). A participant answers every item once, in
core.studies.participant_order; a reload asks the server for the next unanswered item, so it resumes.
A second answer to the same item is refused with 409 (the first one stands; the page moves on).
The researcher (owner) reads the answers (CSV, JSON) and the results (core.agreement on them, and on
every distance services.distances finds for the study's renders).
"""

from __future__ import annotations

import csv
import io
import math
import secrets
from collections import defaultdict
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core import agreement, block_readings, metrics
from core.params import check_text
from core.studies import RATING_RANGE, SAMPLERS, TASKS, StudyRender, participant_order, sample_triplets
from infra.db import engine_for
from infra.storage import get_store
from infra.tables import Frame, Render, Study, StudyAnswer, StudyItem, StudyParticipant
from services.distances import FrameDistance, order_names, render_distances
from services.errors import FieldError, NotFound
from services.presenters import frame_url
from services.scores import render_problems

MAX_TITLE = 200
MAX_CONCEPT = 200
MAX_INSTRUCTIONS = 4000
MAX_COMMENT = 2000
MAX_LABEL = 80
MAX_RENDERS = 50
MAX_TRIPLETS = 500
DEFAULT_TRIPLETS = 20
MAX_PARTICIPANTS = 1000
#: A response time longer than an hour is not a response time.
MAX_MS = 3_600_000
TOKEN_BYTES = 16
#: Bins of the mark histogram on the timeline.
MARK_BINS = 20

Task = Literal["rate", "mark", "triplets"]
Sampler = Literal["uniform", "problems"]


def _stripped(limit: int, name: str, required: bool = False) -> Any:
    def check(value: str | None) -> str | None:
        if value is None:
            return None
        value = " ".join(value.split()) if name != "instructions" else value.strip()
        if required and not value:
            raise ValueError(f"{name} must not be empty: 1 to {limit} characters")
        if len(value) > limit:
            raise ValueError(f"{name} is at most {limit} characters (got {len(value)})")
        return check_text(name, value)

    return AfterValidator(check)


class StudyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, _stripped(MAX_TITLE, "title", required=True)] = Field(
        description=f"1 to {MAX_TITLE} characters"
    )
    render_ids: list[int] = Field(description=f"1 to {MAX_RENDERS} finished renders")
    tasks: list[Task] = Field(description="one or more of rate, mark, triplets")
    concept: Annotated[str | None, _stripped(MAX_CONCEPT, "concept")] = Field(
        None, description="what a `mark` item asks for: where does <concept> first appear? (needed by mark)"
    )
    triplets: int | None = Field(
        None, ge=1, le=MAX_TRIPLETS, description=f"how many triplets (default {DEFAULT_TRIPLETS})"
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="the triplet sampler's seed")
    instructions: Annotated[str, _stripped(MAX_INSTRUCTIONS, "instructions")] = Field(
        "", description=f"consent and instructions shown first, at most {MAX_INSTRUCTIONS} characters"
    )
    sampler: Sampler = Field("uniform", description="triplets drawn uniformly or toward the map's problems")

    @field_validator("render_ids")
    @classmethod
    def _renders(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError(f"render_ids must name 1 to {MAX_RENDERS} renders")
        if len(value) > MAX_RENDERS:
            raise ValueError(f"render_ids names at most {MAX_RENDERS} renders (got {len(value)})")
        if any(not 1 <= r <= 2**31 - 1 for r in value):
            raise ValueError("render_ids are render ids, 1 or more")
        return list(dict.fromkeys(value))

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"tasks must name at least one of: {', '.join(TASKS)}")
        return list(dict.fromkeys(value))


class StudyOut(BaseModel):
    id: int
    title: str
    render_ids: list[int]
    tasks: list[str]
    concept: str | None
    triplets: int
    seed: int
    sampler: str
    instructions: str
    items: int
    participants: int
    created_at: datetime


class ParticipantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Annotated[str, _stripped(MAX_LABEL, "label")] = Field(
        "", description=f"who it is for, for the researcher (at most {MAX_LABEL} characters)"
    )


class ParticipantOut(BaseModel):
    id: int
    token: str
    url: str
    label: str
    answered: int
    created_at: datetime


class FrameOut(BaseModel):
    index: int
    url: str | None
    t: float


class ItemOut(BaseModel):
    item_id: int
    kind: Literal["rate", "mark", "triplet"]
    render_id: int
    frames: list[FrameOut]
    question: str
    concept: str | None
    #: 1-based: "3 of 20".
    position: int
    total: int
    answered: int


def _number(value: Any) -> Any:
    if isinstance(value, bool):  # JSON true is no rating, t or frame index
        raise ValueError("answer must be a number (a rating, a t or a frame index), not true or false")
    return value


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: int = Field(ge=1, le=2**31 - 1)
    answer: Annotated[float, BeforeValidator(_number)] = Field(
        description="rate: 1 to 5; mark: t from 0 to 1; triplet: the index of the frame that is least alike"
    )
    ms: int = Field(ge=0, le=MAX_MS, description=f"response time in milliseconds, 0 to {MAX_MS}")
    comment: Annotated[str, _stripped(MAX_COMMENT, "comment")] = Field(
        "", description=f"optional, at most {MAX_COMMENT} characters"
    )


class AnswerOut(BaseModel):
    item_id: int
    answer: float
    ms: int
    answered: int
    total: int


class AlreadyAnswered(Exception):
    """A second answer to an item: 409, the first one stands."""


# ---------------------------------------------------------------- making a study


def _done_frames(render: Render) -> list[Frame]:
    return [f for f in render.frames if f.status == "done"]


def _problem_severity(db: Session, render: Render) -> dict[int, float]:
    worst: dict[int, float] = {}
    for problem in render_problems(db, render):
        for index in range(problem.frames[0], problem.frames[1] + 1):
            worst[index] = max(worst.get(index, 0.0), problem.severity)
    return worst


def _check_renders(db: Session, ids: list[int], needs_triplets: bool) -> list[Render]:
    renders = {r.id: r for r in db.scalars(select(Render).where(Render.id.in_(ids)))}
    missing = [i for i in ids if i not in renders]
    if missing:
        raise FieldError("render_ids", f"render_ids {', '.join(map(str, missing))} do not exist")
    for render in renders.values():
        if render.status != "done":
            raise FieldError(
                "render_ids",
                f"render {render.id} is {render.status}; only finished (done) renders can be studied",
            )
        if needs_triplets and len(_done_frames(render)) < 3:
            raise FieldError(
                "render_ids", f"triplets need 3 or more finished frames; render {render.id} has fewer"
            )
    return [renders[i] for i in ids]


def create_study(db: Session, data: StudyCreate) -> Study:
    """Check everything, then write the study and all its items in one commit."""
    if "mark" in data.tasks and not data.concept:
        raise FieldError("concept", "the mark task asks where <concept> first appears: name the concept")
    renders = _check_renders(db, data.render_ids, "triplets" in data.tasks)
    count = (data.triplets or DEFAULT_TRIPLETS) if "triplets" in data.tasks else 0
    study = Study(
        title=data.title,
        tasks=list(data.tasks),
        render_ids=[r.id for r in renders],
        concept=data.concept or None,
        instructions=data.instructions,
        seed=data.seed,
        triplet_count=count,
        sampler=data.sampler,
    )
    items: list[StudyItem] = []
    for task in ("rate", "mark"):
        if task in data.tasks:
            items += [StudyItem(kind=task, render_id=r.id, frames=[]) for r in renders]
    if count:
        spots = [
            StudyRender(
                r.id,
                tuple(f.index for f in _done_frames(r)),
                _problem_severity(db, r) if data.sampler == "problems" else None,
            )
            for r in renders
        ]
        for triplet in sample_triplets(spots, count, data.seed, data.sampler):
            items.append(StudyItem(kind="triplet", render_id=triplet.render_id, frames=list(triplet.frames)))
    for position, item in enumerate(items):
        item.position = position
    study.items = items
    db.add(study)
    db.commit()
    db.refresh(study)
    return study


def list_studies(db: Session) -> list[Study]:
    return list(db.scalars(select(Study).order_by(Study.id.desc())))


def get_study(db: Session, study_id: int) -> Study:
    study = db.get(Study, study_id)
    if study is None:
        raise NotFound("study", study_id)
    return study


def study_out(db: Session, study: Study) -> StudyOut:
    return StudyOut(
        id=study.id,
        title=study.title,
        render_ids=list(study.render_ids),
        tasks=list(study.tasks),
        concept=study.concept,
        triplets=study.triplet_count,
        seed=study.seed,
        sampler=study.sampler,
        instructions=study.instructions,
        items=len(study.items),
        participants=len(study.participants),
        created_at=study.created_at,
    )


# ---------------------------------------------------------------- participants


def add_participant(db: Session, study: Study, data: ParticipantCreate) -> StudyParticipant:
    if len(study.participants) >= MAX_PARTICIPANTS:
        raise FieldError("label", f"a study holds at most {MAX_PARTICIPANTS} participants")
    participant = StudyParticipant(
        study_id=study.id, token=secrets.token_urlsafe(TOKEN_BYTES), label=data.label
    )
    db.add(participant)
    db.commit()
    db.refresh(participant)
    return participant


def answered_counts(db: Session, study: Study) -> dict[int, int]:
    rows = db.execute(
        select(StudyAnswer.participant_id, func.count())
        .join(StudyParticipant, StudyParticipant.id == StudyAnswer.participant_id)
        .where(StudyParticipant.study_id == study.id)
        .group_by(StudyAnswer.participant_id)
    )
    return {pid: int(n) for pid, n in rows}


def participant_out(participant: StudyParticipant, answered: int = 0) -> ParticipantOut:
    return ParticipantOut(
        id=participant.id,
        token=participant.token,
        url=f"/p/{participant.token}",
        label=participant.label,
        answered=answered,
        created_at=participant.created_at,
    )


def find_participant(db: Session, token: str) -> StudyParticipant | None:
    if not token or len(token) > 64:
        return None
    return db.scalar(select(StudyParticipant).where(StudyParticipant.token == token))


def _answered_items(db: Session, participant: StudyParticipant) -> set[int]:
    return set(db.scalars(select(StudyAnswer.item_id).where(StudyAnswer.participant_id == participant.id)))


def progress(db: Session, participant: StudyParticipant) -> tuple[int, int]:
    """(answered, total) for a participant."""
    study = get_study(db, participant.study_id)
    return len(_answered_items(db, participant)), len(study.items)


def _question(item: StudyItem, concept: str | None) -> str:
    if item.kind == "rate":
        return "How coherent is this transition? 1: falls apart, 5: one smooth, believable change."
    if item.kind == "mark":
        return f"Where does {concept} first appear? Click that moment on the strip."
    return "Which of these three pictures is least like the other two? Click it."


def next_item(db: Session, participant: StudyParticipant) -> ItemOut | None:
    """The participant's next unanswered item, or None when every item is answered."""
    study = get_study(db, participant.study_id)
    items = {i.id: i for i in study.items}
    done = _answered_items(db, participant)
    order = participant_order(list(items), [i.kind for i in items.values()], study.seed, participant.id)
    pending = [i for i in order if i not in done]
    if not pending:
        return None
    item = items[pending[0]]
    render = db.get(Render, item.render_id)
    assert render is not None  # items are deleted with their render
    by_index = {f.index: f for f in _done_frames(render)}
    indices = item.frames if item.kind == "triplet" else sorted(by_index)
    return ItemOut(
        item_id=item.id,
        kind=item.kind,  # type: ignore[arg-type]
        render_id=item.render_id,
        frames=[
            FrameOut(index=i, url=frame_url(by_index[i]), t=by_index[i].t) for i in indices if i in by_index
        ],
        question=_question(item, study.concept),
        concept=study.concept,
        position=len(done) + 1,
        total=len(items),
        answered=len(done),
    )


def _check_answer(item: StudyItem, value: float) -> None:
    if not math.isfinite(value):
        raise FieldError("answer", "answer must be a finite number")
    if item.kind == "rate":
        low, high = RATING_RANGE
        if value != int(value) or not low <= value <= high:
            raise FieldError("answer", f"a rating is a whole number from {low} to {high} (got {value:g})")
    elif item.kind == "mark":
        if not 0 <= value <= 1:
            raise FieldError("answer", f"a mark is a t from 0 (start) to 1 (end) (got {value:g})")
    elif value not in item.frames:
        shown = ", ".join(map(str, item.frames))
        raise FieldError("answer", f"a triplet's answer is one of its frame indices: {shown} (got {value:g})")


def answer(db: Session, participant: StudyParticipant, data: AnswerIn) -> AnswerOut:
    item = db.get(StudyItem, data.item_id)
    if item is None or item.study_id != participant.study_id:
        raise FieldError("item_id", f"item {data.item_id} is not part of this participant's study")
    _check_answer(item, data.answer)
    if db.scalar(
        select(StudyAnswer.id).where(
            StudyAnswer.participant_id == participant.id, StudyAnswer.item_id == item.id
        )
    ):
        raise AlreadyAnswered(f"item {item.id} is already answered; the first answer stands")
    db.add(
        StudyAnswer(
            participant_id=participant.id,
            item_id=item.id,
            answer=data.answer,
            comment=data.comment,
            ms=data.ms,
        )
    )
    try:
        db.commit()
    except IntegrityError:  # the same answer posted twice at once: the unique constraint kept one
        db.rollback()
        raise AlreadyAnswered(f"item {item.id} is already answered; the first answer stands") from None
    answered, total = progress(db, participant)
    return AnswerOut(item_id=item.id, answer=data.answer, ms=data.ms, answered=answered, total=total)


# ---------------------------------------------------------------- answers and results

ANSWER_COLUMNS = (
    "participant_id", "participant", "item_id", "kind", "render_id", "frames", "answer", "comment", "ms",
    "answered_at",
)  # fmt: skip


def answer_rows(db: Session, study: Study) -> list[dict[str, Any]]:
    """Every answer of the study, one row each (the CSV's and the JSON export's rows)."""
    rows = db.execute(
        select(StudyAnswer, StudyItem, StudyParticipant)
        .join(StudyItem, StudyItem.id == StudyAnswer.item_id)
        .join(StudyParticipant, StudyParticipant.id == StudyAnswer.participant_id)
        .where(StudyItem.study_id == study.id)
        .order_by(StudyAnswer.participant_id, StudyAnswer.id)
    ).all()
    return [
        {
            "participant_id": p.id,
            "participant": p.label,
            "item_id": item.id,
            "kind": item.kind,
            "render_id": item.render_id,
            "frames": list(item.frames),
            "answer": int(a.answer) if item.kind != "mark" else a.answer,
            "comment": a.comment,
            "ms": a.ms,
            "answered_at": a.created_at.isoformat(),
        }
        for a, item, p in rows
    ]


#: What a spreadsheet reads as the start of a formula in a cell (OWASP, "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet shows as text: a participant's comment or label that starts like a formula
    (`=HYPERLINK(...)`) gets a leading apostrophe, which spreadsheets hide (the JSON export keeps it)."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def answers_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=ANSWER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()} | {"frames": " ".join(map(str, row["frames"]))})
    return out.getvalue()


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _adjacent(render: Render, measure: FrameDistance) -> tuple[list[float], list[float]]:
    """The distance's adjacent-frame distances over the render's finished frames, and each pair's mid t."""
    frames = _done_frames(render)
    distances, ts = [], []
    for a, b in zip(frames, frames[1:], strict=False):
        d = measure(a.index, b.index)
        if d is None:
            return [], []
        distances.append(d)
        ts.append((a.t + b.t) / 2)
    return distances, ts


def _distance_rows(
    db: Session,
    renders: dict[int, Render],
    picks: dict[int, dict[int, int]],
    shown: dict[int, tuple[int, tuple[int, int, int]]],
    mean_rating: dict[int, float],
    marks: dict[int, list[float]],
) -> list[dict[str, Any]]:
    """One row per distance stored for the renders: how far it agrees with people on each task."""
    distances = {rid: render_distances(db, render) for rid, render in renders.items()}
    rows = []
    for name in order_names({n for by in distances.values() for n in by}):
        hits = judged = 0.0
        for item_id, by in picks.items():
            render_id, frames = shown[item_id]
            measure = distances.get(render_id, {}).get(name)
            if measure is None:
                continue
            accuracy, n = agreement.triplet_accuracy([(frames, pick) for pick in by.values()], measure)
            if accuracy is not None:
                hits += accuracy * n
                judged += n
        smooth, rated, gaps = [], [], []
        for render_id, render in renders.items():
            measure = distances[render_id].get(name)
            adjacent, ts = _adjacent(render, measure) if measure else ([], [])
            if not adjacent:
                continue
            if render_id in mean_rating:
                smooth.append(metrics.smoothness(adjacent))
                rated.append(mean_rating[render_id])
            middle = agreement.median(marks.get(render_id, []))
            if middle is not None:  # vs the middle of the distance's biggest adjacent change
                gaps.append(abs(middle - ts[max(range(len(adjacent)), key=adjacent.__getitem__)]))
        rows.append(
            {
                "name": name,
                "label": block_readings.label(name),
                "triplet_accuracy": _round(hits / judged) if judged else None,
                "triplet_answers": int(judged),
                "rating_rho": _round(agreement.spearman(smooth, rated)),
                "mark_gap": _round(sum(gaps) / len(gaps)) if gaps else None,
            }
        )
    return rows


def results(db: Session, study: Study) -> dict[str, Any]:
    """Agreement between people, and between people and each distance (core.agreement; docs/studies.md)."""
    rows = answer_rows(db, study)
    renders = {r.id: r for r in db.scalars(select(Render).where(Render.id.in_(study.render_ids)))}
    ratings: dict[int, list[float]] = defaultdict(list)
    marks: dict[int, list[float]] = defaultdict(list)
    picks: dict[int, dict[int, int]] = defaultdict(dict)
    shown: dict[int, tuple[int, tuple[int, int, int]]] = {}
    for row in rows:
        if row["kind"] == "rate":
            ratings[row["render_id"]].append(float(row["answer"]))
        elif row["kind"] == "mark":
            marks[row["render_id"]].append(float(row["answer"]))
        else:
            frames = tuple(row["frames"])
            picks[row["item_id"]][row["participant_id"]] = frames.index(row["answer"])
            shown[row["item_id"]] = (row["render_id"], frames)  # type: ignore[assignment]
    mean_rating = {r: sum(v) / len(v) for r, v in ratings.items()}
    people_accuracy, people_judged = agreement.leave_one_out_accuracy(picks)

    distance_rows = _distance_rows(db, renders, picks, shown, mean_rating, marks)
    return {
        "study_id": study.id,
        "participants": len(study.participants),
        "answers": len(rows),
        "items": len(study.items),
        "ratings": {
            "alpha": _round(agreement.krippendorff_alpha_interval(ratings)),
            "per_render": [
                {"render_id": r, "mean": _round(mean_rating.get(r)), "n": len(ratings.get(r, []))}
                for r in study.render_ids
            ],
        },
        "triplets": {
            "split_half": _round(agreement.split_half_consistency(picks, seed=study.seed)),
            "people_accuracy": _round(people_accuracy),
            "people_answers": people_judged,
            "answers": sum(len(by) for by in picks.values()),
            "chance": _round(agreement.CHANCE),
        },
        "marks": [
            {
                "render_id": r,
                "n": len(marks.get(r, [])),
                "median": _round(agreement.median(marks.get(r, []))),
                "histogram": agreement.histogram(marks.get(r, []), MARK_BINS),
            }
            for r in study.render_ids
        ]
        if "mark" in study.tasks
        else [],
        "distances": distance_rows,
    }


__all__ = [
    "SAMPLERS",
    "AlreadyAnswered",
    "AnswerIn",
    "ParticipantCreate",
    "StudyCreate",
    "add_participant",
    "answer",
    "answer_rows",
    "answers_csv",
    "create_study",
    "find_participant",
    "next_item",
    "results",
]


# ---------------------------------------------------------------- people's triplets for the layer probe


def probe_triplets(database_url: str) -> dict[str, list[tuple[list[bytes], int]]]:
    """Every study's answered triplets as bench.layer_probe reads them (its STUDY_READER): study title →
    one entry per answer, (the three frames' PNG bytes in the item's order, the position people chose).

    Frames whose picture is gone from the store (a deleted render keeps no item, but a store can be wiped)
    are left out rather than guessed."""
    store = get_store()
    found: dict[str, list[tuple[list[bytes], int]]] = {}
    with sessionmaker(bind=engine_for(database_url))() as db:
        rows = db.execute(
            select(Study.id, Study.title, StudyItem, StudyAnswer.answer)
            .join(StudyItem, StudyItem.study_id == Study.id)
            .join(StudyAnswer, StudyAnswer.item_id == StudyItem.id)
            .where(StudyItem.kind == "triplet")
            .order_by(Study.id, StudyAnswer.id)
        ).all()
        for study_id, title, item, answer in rows:
            keys = dict(
                db.execute(
                    select(Frame.index, Frame.key).where(
                        Frame.render_id == item.render_id, Frame.index.in_(item.frames)
                    )
                ).all()
            )
            frames = [keys.get(index) for index in item.frames]
            if any(key is None or not store.exists(key) for key in frames) or int(answer) not in item.frames:
                continue
            pictures = [store.read(key) for key in frames if key is not None]
            found.setdefault(f"{title} (#{study_id})", []).append((pictures, item.frames.index(int(answer))))
    return found
