from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.deps import SessionDep
from app.schemas import EditOut, TransitionCreate, TransitionOut, TransitionUpdate
from app.services import transitions as services
from app.services import views

router = APIRouter(prefix="/api/transitions", tags=["transitions"])


@router.get("", response_model=list[TransitionOut])
def list_transitions(
    db: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many, newest edits first")] = 100,
    offset: Annotated[int, Query(ge=0, description="skip this many")] = 0,
) -> list[TransitionOut]:
    transitions = services.list_transitions(db, limit=limit, offset=offset)
    renders = views.latest_renders(db, transitions)
    return [views.transition_out(db, t, renders.get(t.id)) for t in transitions]


@router.post("", response_model=TransitionOut, status_code=status.HTTP_201_CREATED)
def create_transition(data: TransitionCreate, db: SessionDep) -> TransitionOut:
    return views.transition_out(db, services.create_transition(db, data))


@router.get("/{transition_id}", response_model=TransitionOut)
def get_transition(transition_id: int, db: SessionDep) -> TransitionOut:
    return views.transition_out(db, services.get_transition(db, transition_id))


@router.patch("/{transition_id}", response_model=TransitionOut)
def update_transition(transition_id: int, patch: TransitionUpdate, db: SessionDep) -> TransitionOut:
    transition = services.update_transition(db, services.get_transition(db, transition_id), patch)
    return views.transition_out(db, transition)


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
