from __future__ import annotations

from fastapi import APIRouter, Response, status

from app import services
from app.deps import SessionDep
from app.schemas import EditOut, TransitionCreate, TransitionOut, TransitionUpdate

router = APIRouter(prefix="/api/transitions", tags=["transitions"])


@router.get("", response_model=list[TransitionOut])
def list_transitions(db: SessionDep) -> list[TransitionOut]:
    return [services.transition_out(db, t) for t in services.list_transitions(db)]


@router.post("", response_model=TransitionOut, status_code=status.HTTP_201_CREATED)
def create_transition(data: TransitionCreate, db: SessionDep) -> TransitionOut:
    return services.transition_out(db, services.create_transition(db, data))


@router.get("/{transition_id}", response_model=TransitionOut)
def get_transition(transition_id: int, db: SessionDep) -> TransitionOut:
    return services.transition_out(db, services.get_transition(db, transition_id))


@router.patch("/{transition_id}", response_model=TransitionOut)
def update_transition(transition_id: int, patch: TransitionUpdate, db: SessionDep) -> TransitionOut:
    transition = services.update_transition(db, services.get_transition(db, transition_id), patch)
    return services.transition_out(db, transition)


@router.delete("/{transition_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_transition(transition_id: int, db: SessionDep) -> Response:
    services.delete_transition(db, services.get_transition(db, transition_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{transition_id}/edits", response_model=list[EditOut])
def list_edits(transition_id: int, db: SessionDep) -> list[EditOut]:
    """The transition's history: every change with the version it produced, oldest first."""
    return [
        EditOut(version=e.version, kind=e.kind, payload=e.payload, created_at=e.created_at)
        for e in services.list_edits(db, services.get_transition(db, transition_id))
    ]
