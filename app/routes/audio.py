"""A transition's soundtrack: upload (PUT), read (GET), remove (DELETE), its file and onsets, snapping
keyframes to its beats; and the same from the page's forms (docs/animatics.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.deps import AccessDep, Id, IfMatchDep, SessionDep, form_version
from app.downloads import audio_response
from app.htmx import is_htmx
from app.routes.pages.editor import conflict_response, timeline_response
from core.params import whole_number
from core.timecode import format_time
from infra.tables import Transition
from services import audio, history, presenters, timing, transitions
from services.errors import FieldError, NotFound
from services.history import Actor
from services.schemas import TransitionOut, TransitionUpdate
from services.transitions import get_transition

router = APIRouter(prefix="/api/transitions", tags=["audio"])
pages = APIRouter(include_in_schema=False)


class AudioOut(BaseModel):
    """A transition's soundtrack: its length, rate and beat times (s), and where to get it."""

    duration: float = Field(description="seconds")
    sample_rate: int = Field(description="the file's own sample rate (Hz)")
    beats: list[float] = Field(description="beat times in seconds of the audio (librosa beat_track)")
    onsets_url: str | None = Field(
        None, description="onset strength per hop and onset times (JSON), for audio-driven spacing"
    )
    url: str = Field(description="the audio file as uploaded")


class OnsetsOut(BaseModel):
    hop_seconds: float
    strength: list[float] = Field(description="onset strength of the percussive part, one value per hop")
    onsets: list[float] = Field(description="onset times in seconds")
    beats: list[float]
    tempo: float


def _out(transition: Transition) -> AudioOut:
    record = transition.audio
    if not record:
        raise NotFound("soundtrack of transition", transition.id)
    base = f"/api/transitions/{transition.id}/audio"
    return AudioOut(
        duration=record["duration"],
        sample_rate=record["sample_rate"],
        beats=record.get("beats", []),
        onsets_url=f"{base}/onsets",
        url=f"{base}/file",
    )


async def _read_upload(request: Request) -> tuple[bytes, str]:
    """The multipart field `audio`, refused past SEGUE_MAX_AUDIO_MB without keeping the rest."""
    limit = audio.max_bytes()
    declared = request.headers.get("content-length", "")
    if (size := whole_number(declared)) is not None and size > limit + 64_000:
        raise FieldError(
            "audio",
            f"audio is {size / 1e6:.1f} MB; this server takes at most {limit / 1e6:g} MB "
            "(SEGUE_MAX_AUDIO_MB)",
        )
    form = await request.form(max_files=1, max_fields=5)
    upload = form.get("audio")
    if not isinstance(upload, UploadFile):
        raise FieldError("audio", "audio is required: send the file as the multipart field `audio`")
    data = await upload.read(limit + 1)
    await upload.close()
    return data, upload.filename or "soundtrack"


def attach(db: Any, transition: Transition, data: bytes, name: str, **edit: Any) -> None:
    """Check and analyse the file, then make it the transition's soundtrack (an undoable edit). Its files
    are stored only once the edit holds its version: a stale If-Match (409) leaves nothing behind."""
    upload = audio.check_and_analyse(data, name)
    record = upload.record

    def change() -> history.Outcome:
        upload.store()
        transition.audio = record
        summary = f"soundtrack “{record['name']}” ({format_time(record['duration'])})"
        return history.Outcome(payload={"audio": record["key"]}, summary=summary)

    history.edit(db, transition, "audio", change, **edit)


def detach(db: Any, transition: Transition, **edit: Any) -> None:
    def change() -> history.Outcome:
        transition.audio = None
        return history.Outcome(summary="soundtrack removed")

    history.edit(db, transition, "audio", change, **edit)


@router.put(
    "/{transition_id}/audio",
    response_model=AudioOut,
    responses={422: {"description": "not audio, truncated, empty, too large or too long: nothing stored"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["audio"],
                        "properties": {"audio": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def put_audio(
    transition_id: Id, request: Request, db: SessionDep, access: AccessDep, if_match: IfMatchDep
) -> AudioOut:
    """Upload the soundtrack (WAV, MP3, OGG, FLAC, M4A) as multipart field `audio`: it is decoded, its beats
    and onsets found, and it replaces the transition's soundtrack (undoable)."""
    transition = get_transition(db, transition_id)
    data, name = await _read_upload(request)
    await run_in_threadpool(attach, db, transition, data, name, expected=if_match, actor=access.actor)
    db.refresh(transition)
    return _out(transition)


@router.get("/{transition_id}/audio", response_model=AudioOut)
def get_audio(transition_id: Id, db: SessionDep) -> AudioOut:
    return _out(get_transition(db, transition_id))


@router.delete("/{transition_id}/audio", status_code=status.HTTP_204_NO_CONTENT)
def delete_audio(transition_id: Id, db: SessionDep, access: AccessDep, if_match: IfMatchDep) -> Response:
    """Remove the soundtrack (undoable; the file stays in the store under its hash)."""
    transition = get_transition(db, transition_id)
    if not transition.audio:
        raise NotFound("soundtrack of transition", transition_id)
    detach(db, transition, expected=if_match, actor=access.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{transition_id}/audio/file", response_class=Response)
def audio_file(transition_id: Id, request: Request, db: SessionDep) -> Response:
    record = get_transition(db, transition_id).audio
    if not record:
        raise NotFound("soundtrack of transition", transition_id)
    try:
        return audio_response(record["key"], record["media_type"], request.headers.get("range"))
    except FileNotFoundError:
        raise NotFound("soundtrack file of transition", transition_id) from None


@router.get("/{transition_id}/audio/onsets", response_model=OnsetsOut)
def audio_onsets(transition_id: Id, db: SessionDep) -> OnsetsOut:
    record = get_transition(db, transition_id).audio
    if not record:
        raise NotFound("soundtrack of transition", transition_id)
    try:
        analysis = audio.analysis_of(record)
    except FileNotFoundError:
        raise NotFound("soundtrack analysis of transition", transition_id) from None
    return OnsetsOut(**{name: analysis[name] for name in OnsetsOut.model_fields})


@router.post("/{transition_id}/snap-to-beats", response_model=TransitionOut)
def snap_to_beats(
    transition_id: Id, db: SessionDep, access: AccessDep, if_match: IfMatchDep
) -> TransitionOut:
    """Move every inner keyframe to the nearest beat of the soundtrack: one edit, undone like any other."""
    transition = get_transition(db, transition_id)
    timing.snap_to_beats(db, transition, expected=if_match, actor=access.actor)
    db.refresh(transition)
    return presenters.transition_out(db, transition)


# ---------------------------------------------------------------- the page's forms


def _expected(form: Any) -> int | None:
    return form_version(form.get("version"))


def _actor(access: Any) -> Actor:
    return access.actor  # type: ignore[no-any-return]


@pages.post("/transitions/{transition_id}/audio", response_class=HTMLResponse)
async def upload_audio_form(
    request: Request, transition_id: Id, db: SessionDep, access: AccessDep
) -> Response:
    transition = get_transition(db, transition_id)
    try:
        data, name = await _read_upload(request)
        form = await request.form()
        await run_in_threadpool(
            attach, db, transition, data, name, expected=_expected(form), actor=_actor(access)
        )
    except history.Conflict as exc:
        return conflict_response(request, db, exc)
    except FieldError as exc:  # the panel's one error line: the file, or the version the form named
        return timeline_response(request, db, transition, {}, {"audio.audio": exc.message})
    return timeline_response(request, db, transition)


@pages.post("/transitions/{transition_id}/audio/{action}", response_class=HTMLResponse)
async def audio_action_form(
    request: Request, transition_id: Id, action: str, db: SessionDep, access: AccessDep
) -> Response:
    """remove: drop the soundtrack; snap: keyframes to beats; follow: frames = the sound's length x fps."""
    transition = get_transition(db, transition_id)
    form = await request.form()
    try:
        expected = _expected(form)
        if action == "remove":
            detach(db, transition, expected=expected, actor=_actor(access))
        elif action == "snap":
            timing.snap_to_beats(db, transition, expected=expected, actor=_actor(access))
        elif action == "follow":
            view = timing.soundtrack_view(transition)
            if view is None:
                raise FieldError("audio", "there is no soundtrack to follow")
            patch = TransitionUpdate.model_validate({"frames": view["follow_frames"], "version": expected})
            transitions.update_transition(db, transition, patch, expected=expected, actor=_actor(access))
        else:
            raise NotFound("soundtrack action", action)
    except history.Conflict as exc:
        return conflict_response(request, db, exc)
    except FieldError as exc:
        return timeline_response(request, db, transition, {}, {"audio.audio": exc.message})
    except ValidationError as exc:
        return timeline_response(request, db, transition, {}, {"audio.audio": str(exc.errors()[0]["msg"])})
    if not is_htmx(request):
        return RedirectResponse(f"/transitions/{transition.id}", status_code=303)
    return timeline_response(request, db, transition)
