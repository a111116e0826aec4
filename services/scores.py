"""The confusion map of a render: its frames' stored scores turned into progress, change, flags, summary.

The worker scores; this module only reads (core.scores does the math, core.confusion the flags).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import block_readings, confusion, problems
from core.scores import (
    FrameRef,
    RenderShape,
    StoredScore,
    noise_std,
    pixel_istd,
    render_shape,
    transition_interp_score,
)
from core.statuses import Status
from infra.config import get_settings
from infra.tables import Frame, FrameScore, Render
from services.errors import FieldError
from services.schemas import FlagOut, FrameScoreOut, ProblemOut, ScoresOut, ScoreSummaryOut, SimilarityOut

#: Which scorer the plots show first when several are stored (progress needs a text-aware or image scorer).
PREFERENCE = ("clip", "unet", "ssim")


def thresholds() -> confusion.Thresholds:
    """The flag rules' thresholds from the SEGUE_FLAG_* settings (each rule's name, prefixed)."""
    s = get_settings()
    return confusion.Thresholds(
        **{f.name: getattr(s, f"flag_{f.name}") for f in fields(confusion.Thresholds)}
    )


def available_scorers(db: Session, render: Render) -> list[str]:
    keys = [f.key for f in render.frames]
    found = set(db.scalars(select(FrameScore.scorer).where(FrameScore.frame_key.in_(keys)).distinct()))
    # A study's per-block readings (core/block_readings.py) are distances for its results, not map scorers.
    found = {s for s in found if not s.startswith(block_readings.PREFIX)}
    # A U-Net scorer on a recorded block ("unet-up2-t500") ranks as "unet".
    rank = {name: i for i, name in enumerate(PREFERENCE)}
    return sorted(found, key=lambda s: (rank.get(s.split("-")[0], len(rank)), s))


def stored_scores(db: Session, scorer: str, keys: Sequence[str]) -> dict[str, StoredScore]:
    """What `scorer` stored for these frame keys (the ones it has scored)."""
    rows = db.execute(
        select(FrameScore.frame_key, FrameScore.embedding, FrameScore.sim_a, FrameScore.sim_b).where(
            FrameScore.scorer == scorer, FrameScore.frame_key.in_(keys)
        )
    )
    return {key: StoredScore.from_bytes(blob, a, b) for key, blob, a, b in rows}


def shape(db: Session, render: Render, scorer: str | None = None) -> tuple[RenderShape | None, list[str]]:
    """The render's shape as `scorer` sees it (default: the preferred one stored), and every scorer stored."""
    available = available_scorers(db, render)
    if scorer is not None and scorer not in available:
        choices = ", ".join(available) or "none yet"
        raise FieldError(
            "scorer", f"scorer '{scorer}' has no scores for render {render.id}; stored: {choices}"
        )
    chosen = scorer or (available[0] if available else None)
    if chosen is None:
        return None, available
    done = [f for f in render.frames if f.status == Status.DONE]
    stored = stored_scores(db, chosen, [f.key for f in done])
    refs = [FrameRef(f.index, f.t, f.segment, f.local_t, f.key) for f in render.frames]
    return render_shape(refs, stored, chosen, thresholds()), available


class ExtraMetrics(TypedDict):
    istd: float | None
    interp_score: float | None
    noise_std: list[float]


def extra_metrics(db: Session, render: Render) -> ExtraMetrics:
    """ISTD (on the ssim scorer's thumbnails), InterpScore (on CLIP's prompt similarities) and each frame's
    starting-noise std; None where the scores they need are not stored."""
    done = sorted((f for f in render.frames if f.status == Status.DONE), key=lambda f: f.index)
    keys = [f.key for f in done]
    rows = db.execute(
        select(
            FrameScore.frame_key, FrameScore.scorer, FrameScore.embedding, FrameScore.sim_a, FrameScore.sim_b
        ).where(FrameScore.frame_key.in_(keys), FrameScore.scorer.in_(("ssim", "clip")))
    )
    by = {(key, scorer): StoredScore.from_bytes(blob, a, b) for key, scorer, blob, a, b in rows}
    thumbs = [by[(k, "ssim")].embedding for k in keys if (k, "ssim") in by]
    sims = [(by[(k, "clip")].sim_a, by[(k, "clip")].sim_b) for k in keys if (k, "clip") in by]
    istd = pixel_istd(thumbs) if len(thumbs) == len(keys) else None
    return {
        "istd": None if istd is None else round(istd, 3),
        "interp_score": _round(transition_interp_score(sims), 2),
        "noise_std": [
            round(noise_std(f.noise_path, f.noise_t, f.seed_a is not None and f.seed_a != f.seed_b), 4)
            for f in sorted(render.frames, key=lambda f: f.index)
        ],
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def scores_out(db: Session, render: Render, scorer: str | None = None) -> ScoresOut:
    found, available = shape(db, render, scorer)
    if found is None:
        return ScoresOut(
            render_id=render.id, scorer=None, scorers=available, frames=[], summary=None, problems=[]
        )
    summary = found.summary
    grouped = problems.group(found.frames)
    return ScoresOut(
        render_id=render.id,
        scorer=found.scorer,
        scorers=available,
        frames=[
            FrameScoreOut(
                index=f.index,
                t=f.t,
                progress=_round(f.progress),
                change=_round(f.change, 5),
                similarity=SimilarityOut(a=_round(f.sim_a), b=_round(f.sim_b)),
                flags=[FlagOut(kind=flag.kind, message=flag.message) for flag in f.flags],  # type: ignore[arg-type]
            )
            for f in found.frames
        ],
        summary=ScoreSummaryOut(
            smoothness=round(summary.smoothness, 4),
            max_jump=round(summary.max_jump, 5),
            mean_jump=round(summary.mean_jump, 5),
            ppl=round(summary.ppl, 5),
            pdv=round(summary.pdv, 7),
            crossing_t=_round(summary.crossing_t),
            monotonicity=round(summary.monotonicity, 4),
            scorer=found.scorer,
            frames_scored=found.scored,
            **extra_metrics(db, render),
        )
        if summary
        else None,
        problems=[problem_out(p) for p in grouped],
    )


def problem_out(problem: problems.Problem) -> ProblemOut:
    return ProblemOut(
        id=problem.id,
        kind=problem.kind,  # type: ignore[arg-type]
        frames=list(problem.frames),
        t=round(problem.t, 6),
        severity=round(problem.severity, 4),
        message=problem.message,
        segment=problem.segment,
    )


def render_problems(db: Session, render: Render, scorer: str | None = None) -> list[problems.Problem]:
    """The render's problems as `scorer` (default: the preferred one stored) sees them, worst first."""
    found, _ = shape(db, render, scorer)
    return problems.group(found.frames) if found else []


PLOT_WIDTH = 1000
PROGRESS_HEIGHT = 140
CHANGE_HEIGHT = 80
NOISE_HEIGHT = 36


def plot_context(db: Session, render: Render, scorer: str | None = None) -> dict[str, object]:
    """What templates/partials/scores.html draws: points in SVG coordinates, flags, keyframes, summary."""
    from services.presenters import frame_url

    try:
        found, available = shape(db, render, scorer)
    except FieldError:
        found, available = shape(db, render)
    keyframes = [k["position"] for k in render.params.get("keyframes", [])]
    if found is None:
        return {"scores": None, "scorers": available, "render": render, "keyframes": keyframes}
    urls = {f.index: frame_url(f) for f in render.frames}
    changes = [f.change for f in found.frames if f.change is not None]
    top = max(changes, default=0.0) or 1.0
    points, bars, flagged = [], [], []
    frames = found.frames
    for position, f in enumerate(frames):
        x = f.t * PLOT_WIDTH
        reasons = [flag.message for flag in f.flags]
        if f.progress is not None:
            shown = min(1.25, max(-0.25, f.progress))
            y = 10 + (1 - shown) * (PROGRESS_HEIGHT - 20)
            points.append(
                {"index": f.index, "x": round(x, 2), "y": round(y, 2), "frame": f, "reasons": reasons}
            )
        if f.change is not None and position + 1 < len(frames):
            x_next = frames[position + 1].t * PLOT_WIDTH
            height = f.change / top * (CHANGE_HEIGHT - 8)
            bars.append(
                {
                    "index": f.index,
                    "x": round(x, 2),
                    "width": round(max(1.0, x_next - x - 1), 2),
                    "y": round(CHANGE_HEIGHT - height, 2),
                    "height": round(height, 2),
                    "frame": f,
                    "jump": any(flag.kind == "jump" for flag in f.flags),
                }
            )
        if f.flags:
            flagged.append({"frame": f, "reasons": reasons, "url": urls.get(f.index)})
    line = " ".join(f"{p['x']},{p['y']}" for p in points)
    grouped = problems.group(frames)
    involved = sorted({i for p in grouped for i in range(p.frames[0], p.frames[1] + 1)})
    extra = extra_metrics(db, render)
    ordered = sorted(render.frames, key=lambda f: f.index)
    noise_line = " ".join(
        f"{f.t * PLOT_WIDTH:.1f},{(1.1 - std) / 0.5 * NOISE_HEIGHT:.1f}"
        for f, std in zip(ordered, extra["noise_std"], strict=True)  # type: ignore[call-overload]
    )
    return {
        "extra": extra,
        "noise_line": noise_line,
        "noise_height": NOISE_HEIGHT,
        "scores": found,
        "scorers": available,
        "render": render,
        "keyframes": keyframes,
        "points": points,
        "line": line,
        "bars": bars,
        "flagged": flagged,
        "problems": grouped,
        "involved": involved,
        "urls": urls,
        "width": PLOT_WIDTH,
        "progress_height": PROGRESS_HEIGHT,
        "change_height": CHANGE_HEIGHT,
        "y_of": lambda p: 10 + (1 - p) * (PROGRESS_HEIGHT - 20),
    }


def insert_position(db: Session, render: Render, frame: Frame) -> float:
    """Where the frame panel's insert box puts a keyframe: the midpoint of a jump that starts at this frame
    (the pair's problem t), else the frame's own t."""
    for problem in render_problems(db, render):
        if problem.kind == problems.JUMP and problem.frames[0] == frame.index:
            return round(problem.t, 6)
    return frame.t


def frame_flags(db: Session, render: Render, index: int) -> list[str]:
    """Why a frame is flagged (empty when it is not, or nothing is scored)."""
    found, _ = shape(db, render)
    frame = next((f for f in found.frames if f.index == index), None) if found else None
    return [flag.message for flag in frame.flags] if frame else []
