from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import Id, SessionDep
from services import rendering, scores
from services.schemas import ScoresOut

router = APIRouter(prefix="/api", tags=["scores"])


@router.get(
    "/renders/{render_id}/scores",
    response_model=ScoresOut,
    responses={404: {"description": "no such render"}, 422: {"description": "no scores by that scorer"}},
)
def render_scores(
    render_id: Id,
    db: SessionDep,
    scorer: Annotated[
        str | None, Query(max_length=32, description="clip, unet or ssim; default: the best one stored")
    ] = None,
) -> ScoresOut:
    """The confusion map: per frame its progress between its keyframes, its change to the next frame, its
    similarity to both prompts and its flags; and the transition's summary. Grows as frames are scored."""
    return scores.scores_out(db, rendering.get_render(db, render_id), scorer)
