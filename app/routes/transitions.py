from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.deps import MAX_ID, AccessDep, Id, IfMatchDep, SessionDep, based_on, owner_only
from services import history, presenters
from services import transitions as services
from services.schemas import EditOut, TransitionCreate, TransitionOut, TransitionUpdate

router = APIRouter(prefix="/api/transitions", tags=["transitions"])


@router.get("", response_model=list[TransitionOut])
def list_transitions(
    db: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500, description="at most this many, newest edits first")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID, description="skip this many")] = 0,
) -> list[TransitionOut]:
    transitions = services.list_transitions(db, limit=limit, offset=offset)
    renders = presenters.latest_renders(db, transitions)
    return [presenters.transition_out(db, t, renders.get(t.id)) for t in transitions]


@router.post("", response_model=TransitionOut, status_code=status.HTTP_201_CREATED)
@owner_only
def create_transition(data: TransitionCreate, db: SessionDep) -> TransitionOut:
    return presenters.transition_out(db, services.create_transition(db, data))


@router.get("/{transition_id}", response_model=TransitionOut)
def get_transition(transition_id: Id, db: SessionDep, response: Response) -> TransitionOut:
    out = presenters.transition_out(db, services.get_transition(db, transition_id))
    response.headers["ETag"] = f'"{out.version}"'  # send it back as If-Match with the next write
    return out


@router.patch(
    "/{transition_id}",
    response_model=TransitionOut,
    responses={409: {"description": "stale If-Match / version: detail and the current transition"}},
)
def update_transition(
    transition_id: Id, patch: TransitionUpdate, db: SessionDep, access: AccessDep, if_match: IfMatchDep
) -> TransitionOut:
    transition = services.update_transition(
        db,
        services.get_transition(db, transition_id),
        patch,
        expected=based_on(if_match, patch.version),
        actor=access.actor,
    )
    return presenters.transition_out(db, transition)


@router.delete("/{transition_id}", status_code=status.HTTP_204_NO_CONTENT)
@owner_only
def delete_transition(transition_id: Id, db: SessionDep) -> Response:
    services.delete_transition(db, services.get_transition(db, transition_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{transition_id}/edits", response_model=list[EditOut])
def list_edits(transition_id: Id, db: SessionDep) -> list[EditOut]:
    """The transition's history, oldest first: every change with the version it produced, what it did
    (`summary`, and exactly: `before`/`after`), who made it (`link_id`, null: the owner) and whether it is
    currently undone."""
    transition = services.get_transition(db, transition_id)
    entries = {e.id: e for e in history.entries(db, transition)}
    return [
        EditOut(
            id=e.id,
            version=e.version,
            kind=e.kind,
            summary=entries[e.id].summary,
            payload=e.payload,
            created_at=e.created_at,
            link_id=e.link_id,
            who=entries[e.id].who,
            before=e.before,
            after=e.after,
            target_id=e.target_id,
            undone=entries[e.id].undone,
        )
        for e in services.list_edits(db, transition)
    ]
