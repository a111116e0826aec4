from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.deps import SessionDep
from app.schemas import KeyframeCreate, KeyframeOut, KeyframeUpdate
from app.services import transitions as services

router = APIRouter(prefix="/api", tags=["keyframes"])


def _out(keyframe) -> KeyframeOut:  # type: ignore[no-untyped-def]
    return KeyframeOut(
        id=keyframe.id,
        position=keyframe.position,
        prompt=keyframe.prompt,
        is_start=keyframe.is_start,
        is_end=keyframe.is_end,
    )


@router.post(
    "/transitions/{transition_id}/keyframes", response_model=KeyframeOut, status_code=status.HTTP_201_CREATED
)
def add_keyframe(transition_id: int, data: KeyframeCreate, db: SessionDep) -> KeyframeOut:
    return _out(services.add_keyframe(db, services.get_transition(db, transition_id), data))


@router.patch("/keyframes/{keyframe_id}", response_model=KeyframeOut)
def update_keyframe(keyframe_id: int, patch: KeyframeUpdate, db: SessionDep) -> KeyframeOut:
    return _out(services.update_keyframe(db, services.get_keyframe(db, keyframe_id), patch))


@router.delete("/keyframes/{keyframe_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_keyframe(keyframe_id: int, db: SessionDep) -> Response:
    services.delete_keyframe(db, services.get_keyframe(db, keyframe_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
