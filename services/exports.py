"""Exports of finished renders: what may be asked for, the cache, the queue, and where the files live.

The web side validates and queues; the worker (worker/exports.py) encodes with worker/encode.py. An
export is cached by (render, format, options): an identical request returns the same row and file.
Files live in the frame store's export area (infra/storage.py: <frames_dir>/exports/ or the bucket's
exports/) and are served by the API with their content type and a Content-Disposition naming the
transition and the render.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast
from urllib.parse import quote

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.params import Range
from core.statuses import UNFINISHED, JobStatus, Status
from infra.queue import send_export
from infra.storage import get_store
from infra.tables import Export, Render, utcnow
from services.errors import FieldError
from services.rows import found
from services.sending import sent_or_failed

log = logging.getLogger(__name__)

ExportFormat = Literal["mp4", "webm", "gif", "webp", "zip", "contact_sheet"]


@dataclass(frozen=True)
class FormatInfo:
    """How one export format is named, served and described."""

    extension: str
    media_type: str
    label: str
    #: Whether fps, hold on keyframes and ping-pong loop mean anything for this format.
    timed: bool
    #: Added to the download name before the extension ("-frames", "-contact-sheet").
    suffix: str = ""
    #: Whether the file carries the render's soundtrack (docs/animatics.md); the others carry none.
    sound: bool = False


FORMATS: dict[str, FormatInfo] = {
    "mp4": FormatInfo(".mp4", "video/mp4", "MP4 video (H.264, AAC sound)", timed=True, sound=True),
    "webm": FormatInfo(".webm", "video/webm", "WebM video (VP9, Opus sound)", timed=True, sound=True),
    "gif": FormatInfo(".gif", "image/gif", "Animated GIF", timed=True),
    "webp": FormatInfo(".webp", "image/webp", "Animated WebP", timed=True),
    "zip": FormatInfo(".zip", "application/zip", "Frames as PNG (zip)", timed=False, suffix="-frames"),
    "contact_sheet": FormatInfo(
        ".png", "image/png", "Contact sheet (PNG)", timed=False, suffix="-contact-sheet"
    ),
}

DEFAULT_FPS = 12
DEFAULT_HOLD_SECONDS = 1.0
#: Limits of the export options, checked with core.params' Range so the messages read like the settings'.
EXPORT_RANGES: dict[str, Range] = {
    "fps": Range(1, lambda _caps: 60),
    "hold_seconds": Range(0.1, lambda _caps: 10, integer=False),
}


def _ranged(value: float, info: ValidationInfo) -> float:
    EXPORT_RANGES[str(info.field_name)].check(str(info.field_name), value)
    return value


class ExportOptions(BaseModel):
    """What a person asks for: a format, and for videos and animations the timing."""

    model_config = ConfigDict(extra="forbid")

    format: ExportFormat
    fps: Annotated[int, AfterValidator(_ranged)] = Field(
        DEFAULT_FPS, description="frames per second of videos and animations (1-60)"
    )
    hold_keyframes: bool = Field(
        False, description="show the frames at keyframe positions for hold_seconds instead of one frame"
    )
    hold_seconds: Annotated[float, AfterValidator(_ranged)] = Field(
        DEFAULT_HOLD_SECONDS, description="how long a held keyframe frame shows (0.1-10 s)"
    )
    loop: bool = Field(False, description="ping-pong: play forward then backward, so the loop is seamless")
    inbetweens: Literal["none", "flow"] = Field(
        "none",
        description="flow: frames synthesized between rendered ones by optical flow (a crossfade where flow "
        "fails) so the video reaches fps from the render's own frame rate; none: every frame shows 1/fps s",
    )

    def normalized(self) -> ExportOptions:
        """Options that do not change the file reset to their defaults, so equal files share a cache key."""
        values = self.model_dump()
        if self.format == "contact_sheet":
            values.update(inbetweens="none")
        if not FORMATS[self.format].timed:
            values.update(hold_keyframes=False, loop=False)
            if values["inbetweens"] == "none":  # a zip's fps only says how many in-betweens it holds
                values.update(fps=DEFAULT_FPS)
        if not values["hold_keyframes"]:
            values["hold_seconds"] = DEFAULT_HOLD_SECONDS
        return ExportOptions.model_validate(values)

    def cache_key(self, render_id: int) -> str:
        payload = {"v": 1, "render": render_id, **self.normalized().model_dump(mode="json")}
        if payload["inbetweens"] == "none":  # keys of exports made before in-betweens existed stay valid
            del payload["inbetweens"]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:40]


class ExportOut(BaseModel):
    id: int
    render_id: int
    format: ExportFormat
    options: dict[str, Any]
    status: JobStatus
    progress: float = Field(description="0 to 1")
    url: str | None = Field(description="where the file is served once the export is done")
    size_bytes: int | None
    error: str | None


# ---------------------------------------------------------------- files


def has_file(export: Export) -> bool:
    """Whether the export's file is in the frame store."""
    return export.file_name is not None and get_store().has_export(export.file_name)


def file_name(options: ExportOptions, cache_key: str) -> str:
    return f"{cache_key}{FORMATS[options.format].extension}"


def ascii_name(text: str) -> str:
    """A title as a safe ASCII file name stem: letters, digits, dots, dashes and underscores."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-._")[:80].rstrip("-._")


def download_name(title: str, render_id: int, export_format: str, ascii_only: bool = True) -> str:
    """`<title>-r<render id><suffix><ext>`, e.g. city-to-forest-r7.mp4."""
    info = FORMATS[export_format]
    if ascii_only:
        stem = ascii_name(title) or "segue"
    else:
        # Format characters out (Unicode Cf: a right-to-left override, U+202E, would show
        # "x.html\u202egpj.exe" as "x.htmlexe.jpg" in a download bar), control characters as a dash.
        shown = "".join(c for c in title if unicodedata.category(c) != "Cf")
        stem = re.sub(r'[\x00-\x1f\x7f-\x9f/\\"]+', "-", shown).strip()[:120] or "segue"
    return f"{stem}-r{render_id}{info.suffix}{info.extension}"


def content_disposition(title: str, render_id: int, export_format: str) -> str:
    """attachment with an ASCII file name for every client and the title as typed (RFC 6266 filename*)."""
    plain = download_name(title, render_id, export_format)
    full = download_name(title, render_id, export_format, ascii_only=False)
    header = f'attachment; filename="{plain}"'
    if full != plain:
        header += f"; filename*=UTF-8''{quote(full, safe='')}"
    return header


# ---------------------------------------------------------------- rows


def get_export(db: Session, export_id: int) -> Export:
    return found(db, Export, export_id, "export")


def export_url(export: Export) -> str | None:
    return f"/api/exports/{export.id}/file" if export.status == Status.DONE else None


def export_out(export: Export) -> ExportOut:
    return ExportOut(
        id=export.id,
        render_id=export.render_id,
        format=cast(ExportFormat, export.format),
        options=export.options,
        status=cast(JobStatus, export.status),
        progress=round(export.progress, 4),
        url=export_url(export),
        size_bytes=export.size_bytes,
        error=export.error,
    )


def list_exports(db: Session, render: Render) -> list[Export]:
    return list(db.scalars(select(Export).where(Export.render_id == render.id).order_by(Export.id.desc())))


def _is_usable(export: Export) -> bool:
    """A cached export that needs no new work: in progress, or done with its file still stored."""
    if export.status in UNFINISHED:
        return True
    return export.status == Status.DONE and has_file(export)


def request_export(db: Session, render: Render, options: ExportOptions) -> tuple[Export, bool]:
    """The export of `render` with `options`: the cached one, or a new one queued on the worker.

    Returns (export, queued): queued is False when an identical export already exists (done or under
    way). A failed export, or a done one whose file is gone, is queued again under the same id.
    """
    if render.status != Status.DONE:
        raise FieldError(
            "status",
            f"render {render.id} is {render.status}; only a finished render (status done) can be exported",
        )
    options = options.normalized()
    key = options.cache_key(render.id)
    if options.format == "zip":  # a zip carries the review notes as they are now: new notes, a new file
        from services.notes import notes_json

        found = notes_json(db, render.transition_id)
        if found:
            key = hashlib.sha256(f"{key}|{json.dumps(found, sort_keys=True)}".encode()).hexdigest()
    export = db.scalar(select(Export).where(Export.cache_key == key))
    if export is not None and _is_usable(export):
        return export, False
    if export is None:
        export = Export(
            render_id=render.id,
            format=options.format,
            options=options.model_dump(mode="json"),
            cache_key=key,
            status=Status.QUEUED,
            progress=0.0,
            file_name=file_name(options, key),
        )
        db.add(export)
        try:
            db.commit()
        except IntegrityError:  # an identical request won the race: use its row
            db.rollback()
            existing = db.scalar(select(Export).where(Export.cache_key == key))
            assert existing is not None
            return existing, False
    else:
        db.execute(
            update(Export)
            .where(Export.id == export.id)
            .values(status=Status.QUEUED, progress=0.0, error=None, size_bytes=None, finished_at=None)
        )
        db.commit()
        db.refresh(export)

    def fail(reason: str) -> None:
        db.execute(
            update(Export)
            .where(Export.id == export.id)
            .values(status=Status.FAILED, error=reason, finished_at=utcnow())
        )
        db.commit()

    with sent_or_failed(f"export {export.id}", fail):
        send_export(export.id)
    return export, True
