"""Render events: one class per event, carrying its own name; the payload is the model's fields.

The worker builds and publishes these, the web app reads them back with `parse` and branches on the
class. On the wire (Redis Streams, the render_events table, the JSON SSE stream) an event is its name
plus `model_dump()` of its payload, which is the format outside clients read.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class RenderStats(BaseModel):
    frames_total: int
    frames_computed: int
    frames_reused: int
    seconds: float | None


class RenderEvent(BaseModel):
    """Base of every render event; `name` is the SSE event name."""

    model_config = ConfigDict(extra="ignore")
    name: ClassVar[str]
    terminal: ClassVar[bool] = False

    render_id: int

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class Progress(RenderEvent):
    name = "progress"
    status: str
    done: int
    total: int
    fraction: float

    @classmethod
    def of(cls, render_id: int, status: str, done: int, total: int) -> Progress:
        return cls(
            render_id=render_id,
            status=status,
            done=done,
            total=total,
            fraction=round(done / max(1, total), 4),
        )


class FrameDone(RenderEvent):
    """A frame's image is stored (rendered now, or reused from an earlier render)."""

    name = "frame"
    index: int
    t: float
    url: str | None
    reused: bool
    seconds: float | None = None


class Preview(RenderEvent):
    """Cheap images of the frames being denoised, every few steps."""

    name = "preview"
    indices: list[int]
    step: int
    steps: int
    images: list[str]  # data URIs


class Finished(RenderEvent):
    """A final event: the stream ends after it (`replayed`: the stream learnt it from the database)."""

    terminal = True
    stats: RenderStats | None = None
    replayed: bool | None = None


class Done(Finished):
    name = "done"


class Failed(Finished):
    name = "failed"
    error: str | None = None


class Cancelled(Finished):
    name = "cancelled"


EVENT_TYPES: dict[str, type[RenderEvent]] = {
    cls.name: cls for cls in (Progress, FrameDone, Preview, Done, Failed, Cancelled)
}
FINAL_EVENTS: dict[str, type[Finished]] = {"done": Done, "failed": Failed, "cancelled": Cancelled}


def parse(name: str, data: dict[str, Any]) -> RenderEvent:
    """An event read back from the bus as its class."""
    return EVENT_TYPES[name].model_validate(data)


def finished(status: str, render_id: int, **fields: Any) -> Finished:
    """The final event for a render that ended with `status` (done, failed or cancelled)."""
    return FINAL_EVENTS[status](render_id=render_id, **fields)


# ---------------------------------------------------------------- a transition's co-viewing channel


class TransitionEvent(BaseModel):
    """Base of the events every viewer of one transition receives (its channel, beside render streams)."""

    model_config = ConfigDict(extra="ignore")
    name: ClassVar[str]

    transition_id: int

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class TransitionChanged(TransitionEvent):
    """An edit was saved: the version it made, its kind (add_keyframe, update, undo, ...) and who made it.

    `client` is the id of the page that sent the edit, so that page can tell its own edits from others'.
    """

    name = "changed"
    version: int
    kind: str
    summary: str
    link_id: int | None = None
    client: str | None = None


class TransitionDeleted(TransitionEvent):
    name = "deleted"


class RenderStarted(TransitionEvent):
    """A render of the transition was started; its own events follow on the same co-viewing stream."""

    name = "render"
    render_id: int
    transition_version: int
    frames_total: int
    status: str


class NoteChanged(TransitionEvent):
    """A review note was added, changed, replied to or deleted (docs/notes.md): co-viewers fetch the notes
    again. `action`: added, updated, replied or deleted; `client` as on TransitionChanged."""

    name = "note"
    note_id: int
    action: str
    link_id: int | None = None
    client: str | None = None


TRANSITION_EVENT_TYPES: dict[str, type[TransitionEvent]] = {
    cls.name: cls for cls in (TransitionChanged, TransitionDeleted, RenderStarted, NoteChanged)
}


def parse_transition_event(name: str, data: dict[str, Any]) -> TransitionEvent:
    return TRANSITION_EVENT_TYPES[name].model_validate(data)
