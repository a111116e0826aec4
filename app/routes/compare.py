"""Two renders side by side, frame by frame aligned on t (e.g. before and after a corrective prompt)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.deps import AccessDep, QueryId, SessionDep, checks_access_itself
from app.templating import templates
from core.statuses import Status
from infra.tables import Frame, Render
from services import presenters, rendering

router = APIRouter(include_in_schema=False)

#: Two frames whose t differ by less than this are at the same moment.
T_TOLERANCE = 1e-6


@dataclass
class Side:
    frame: Frame | None
    url: str | None
    exact: bool  # the frame is at this row's t (else: the nearest frame, shown dimmed)


@dataclass
class Row:
    t: float
    a: Side
    b: Side
    identical: bool  # the same frame key on both sides: the same pixels


def _nearest(frames: list[Frame], t: float) -> Side:
    if not frames:
        return Side(None, None, False)
    frame = min(frames, key=lambda f: (abs(f.t - t), f.index))
    return Side(frame, presenters.frame_url(frame), abs(frame.t - t) < T_TOLERANCE)


def align(a: list[Frame], b: list[Frame]) -> list[Row]:
    """One row per distinct t of either render; each side shows its frame at that t, or its nearest."""
    moments: list[float] = []
    for t in sorted(f.t for f in (*a, *b)):
        if not moments or t - moments[-1] >= T_TOLERANCE:
            moments.append(t)
    rows = []
    for t in moments:
        left, right = _nearest(a, t), _nearest(b, t)
        same = (
            left.exact
            and right.exact
            and left.frame is not None
            and right.frame is not None
            and left.frame.key == right.frame.key
            and left.frame.status == right.frame.status == Status.DONE
        )
        rows.append(Row(t, left, right, same))
    return rows


def _settings_diff(a: Render, b: Render) -> list[tuple[str, Any, Any]]:
    skip = {"keyframes"}
    names = sorted((set(a.params) | set(b.params)) - skip)
    return [(n, a.params.get(n), b.params.get(n)) for n in names if a.params.get(n) != b.params.get(n)]


def _keyframes(render: Render) -> list[tuple[float, str]]:
    return [(k["position"], k["prompt"]) for k in render.params.get("keyframes", [])]


@router.get("/renders/compare", response_class=HTMLResponse)
@checks_access_itself
def compare(request: Request, db: SessionDep, access: AccessDep, a: QueryId, b: QueryId) -> Response:
    left, right = rendering.get_render(db, a), rendering.get_render(db, b)
    access.require(left.transition_id, asked=f"render {a}")
    access.require(right.transition_id, asked=f"render {b}")
    rows = align(list(left.frames), list(right.frames))
    kf_a, kf_b = _keyframes(left), _keyframes(right)
    context = {
        "a": left,
        "b": right,
        "rows": rows,
        "identical": sum(1 for r in rows if r.identical),
        "settings_diff": _settings_diff(left, right),
        "kf_only_a": [k for k in kf_a if k not in kf_b],
        "kf_only_b": [k for k in kf_b if k not in kf_a],
        "choices": {r.id: list(reversed(r.transition.renders))[:30] for r in (left, right)},
        "views": presenters,
    }
    return templates.TemplateResponse(request, "pages/compare.html", context)
