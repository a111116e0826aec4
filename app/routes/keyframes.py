from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.deps import AccessDep, Id, IfMatchDep, SessionDep, based_on
from services import moce
from services import transitions as services
from services.schemas import KeyframeCreate, KeyframeOut, KeyframeUpdate

router = APIRouter(prefix="/api", tags=["keyframes"])


def _out(keyframe) -> KeyframeOut:  # type: ignore[no-untyped-def]
    return KeyframeOut.model_validate(keyframe, from_attributes=True)


@router.post(
    "/transitions/{transition_id}/keyframes", response_model=KeyframeOut, status_code=status.HTTP_201_CREATED
)
def add_keyframe(
    transition_id: Id, data: KeyframeCreate, db: SessionDep, access: AccessDep, if_match: IfMatchDep
) -> KeyframeOut:
    transition = services.get_transition(db, transition_id)
    expected = based_on(if_match, data.version)
    return _out(services.add_keyframe(db, transition, data, expected=expected, actor=access.actor))


@router.get("/keyframes/{keyframe_id}", response_model=moce.KeyframeDetail)
def get_keyframe(keyframe_id: Id, db: SessionDep) -> moce.KeyframeDetail:
    """A keyframe with its settings and `concepts`; when their switch step is "auto", `moce` shows the
    search: `{status: queued|running|done|failed, chosen_step, trace: [{step, disparity, thumbnail_url}]}`
    (null: no search for the keyframe's current inputs, or no "auto" concepts)."""
    return moce.keyframe_detail(db, services.get_keyframe(db, keyframe_id))


@router.patch("/keyframes/{keyframe_id}", response_model=KeyframeOut)
def update_keyframe(
    keyframe_id: Id, patch: KeyframeUpdate, db: SessionDep, access: AccessDep, if_match: IfMatchDep
) -> KeyframeOut:
    keyframe = services.get_keyframe(db, keyframe_id)
    expected = based_on(if_match, patch.version)
    return _out(services.update_keyframe(db, keyframe, patch, expected=expected, actor=access.actor))


@router.delete("/keyframes/{keyframe_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_keyframe(keyframe_id: Id, db: SessionDep, access: AccessDep, if_match: IfMatchDep) -> Response:
    """Delete an intermediate keyframe (If-Match: the version this is based on; stale: 409)."""
    keyframe = services.get_keyframe(db, keyframe_id)
    services.delete_keyframe(db, keyframe, expected=if_match, actor=access.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
