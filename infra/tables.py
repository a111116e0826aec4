"""The domain as stored: transitions, their keyframes, renders of a version of them, frames, edits, events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.params import MAX_MODEL_CHARS, MAX_TITLE_CHARS, RenderSettings, RenderSnapshot
from core.statuses import FINISHED, Status


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always carries its zone: stored in UTC, read back as UTC-aware on every database.

    SQLite has no zone-aware type and hands back naive datetimes; those are UTC here (every writer uses
    utcnow), so the zone is attached on the way out and responses keep their `date-time` schema.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: Ids are never reused on SQLite either (AUTOINCREMENT; PostgreSQL sequences never reuse): a deleted render's
#: id, events or frames can never be mistaken for a new one's (migration 0007).
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime()}


class Leased:
    """Work a worker holds under a lease (worker/lease.py): a frame, the planning of a render, an export, a
    suggestion, a switch step search, an autopilot's step. Held while `leased_until` is ahead (the worker's
    heartbeat extends it); past it the reaper (services/jobs.py) queues the work again, and after
    SEGUE_MAX_ATTEMPTS takes fails it with the reason. Only the holder of `lease_token` writes the result.
    """

    lease_token: Mapped[str | None] = mapped_column(String(32), nullable=True, default=None)
    leased_until: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
    #: How many times a worker took it; work whose workers keep dying fails after a few.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


def setting(name: str) -> Any:
    """A render setting's default (core.params.RenderSettings): a row made without it matches the API's."""
    return RenderSettings.model_fields[name].default


def setting_column(kind: Any, name: str, server_default: str | None = None) -> Any:
    """A Transition column of a render setting, defaulting to the setting's default (server_default: what
    the migration that added it gave existing rows)."""
    return mapped_column(kind, default=setting(name), server_default=server_default)


class Transition(Base):
    """A transition between prompts: its keyframes plus the settings every frame is rendered with."""

    __tablename__ = "transitions"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(MAX_TITLE_CHARS), default="")
    negative_prompt: Mapped[str] = setting_column(Text, "negative_prompt")
    frames: Mapped[int] = setting_column(Integer, "frames")
    seed: Mapped[int] = mapped_column(BigInteger, default=0)
    steps: Mapped[int] = setting_column(Integer, "steps")
    guidance_scale: Mapped[float] = setting_column(Float, "guidance_scale")
    width: Mapped[int] = setting_column(Integer, "width")
    height: Mapped[int] = setting_column(Integer, "height")
    scheduler: Mapped[str] = setting_column(String(32), "scheduler")
    text_interpolation: Mapped[str] = setting_column(String(16), "text_interpolation")
    batch_size: Mapped[int] = setting_column(Integer, "batch_size")
    noise_interpolation: Mapped[str] = setting_column(String(16), "noise_interpolation", "slerp")
    spacing: Mapped[str] = setting_column(String(16), "spacing", "uniform")
    spacing_budget: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    in_between: Mapped[str] = setting_column(String(8), "in_between", "full")
    shared_from_step: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    # Animatics (migration 0012, docs/animatics.md): playback rate, soundtrack start, audio spacing blend.
    fps: Mapped[int] = setting_column(Integer, "fps", "12")
    audio_offset: Mapped[float] = setting_column(Float, "audio_offset", "0")
    smooth: Mapped[float] = setting_column(Float, "smooth", "0")
    #: The soundtrack (services/audio.py: key in the frame store, name, duration, beats...); null: none.
    audio: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True, default=None)
    guidance_until: Mapped[float] = setting_column(Float, "guidance_until", "1.0")
    deep_cache_interval: Mapped[int] = setting_column(Integer, "deep_cache_interval", "1")
    deep_cache_from: Mapped[float] = setting_column(Float, "deep_cache_from", "0.0")
    attention_interpolation: Mapped[str] = setting_column(String(8), "attention_interpolation", "none")
    attention_steps: Mapped[float] = setting_column(Float, "attention_steps", "0.5")
    neighbour_reuse_from: Mapped[float] = setting_column(Float, "neighbour_reuse_from", "1.0")
    image_endpoints: Mapped[str] = setting_column(String(16), "image_endpoints", "image")
    model: Mapped[str] = mapped_column(String(MAX_MODEL_CHARS))
    #: Bumped by every edit; a render records the version it was started from.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    keyframes: Mapped[list[Keyframe]] = relationship(
        back_populates="transition", order_by="Keyframe.position", cascade="all, delete-orphan"
    )
    renders: Mapped[list[Render]] = relationship(
        back_populates="transition", order_by="Render.id", cascade="all, delete-orphan"
    )


class Keyframe(Base):
    __tablename__ = "keyframes"
    __table_args__ = (
        UniqueConstraint("transition_id", "position", name="uq_keyframe_position"),
        # Ids are never reused (SQLite AUTOINCREMENT; PostgreSQL sequences never are): undoing a delete puts
        # the keyframe back under its own id, which later entries of the history refer to.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transition_id: Mapped[int] = mapped_column(ForeignKey("transitions.id", ondelete="CASCADE"), index=True)
    position: Mapped[float] = mapped_column(Float)
    prompt: Mapped[str] = mapped_column(Text)
    is_start: Mapped[bool] = mapped_column(Boolean, default=False)
    is_end: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Paths (core.params.KeyframeSettings): null means "not set" (inherit), hold 0 and no cut by default.
    seed: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=None)
    hold_frames: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cut: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    frames: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    noise_interpolation: Mapped[str | None] = mapped_column(String(16), nullable=True, default=None)
    switch_step: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    attention_interpolation: Mapped[str | None] = mapped_column(String(8), nullable=True, default=None)
    #: MoCE (core.params.Concepts as JSON: first, second, descriptions, switch_step N or "auto"); null: off.
    concepts: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True, default=None
    )
    #: Its image (core.params.KeyframeImage as JSON: sha256, width, height; the PNG is in the frame store).
    image: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True, default=None)

    transition: Mapped[Transition] = relationship(back_populates="keyframes")

    @property
    def is_endpoint(self) -> bool:
        return self.is_start or self.is_end


class Render(Leased, Base):
    """One rendering of a whole timeline, frozen at the transition version it was started from.

    Its lease is the planning's (probed spacing, worker/planning.py) while it has no frames yet; null
    otherwise (its frames carry their own leases).
    """

    __tablename__ = "renders"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    transition_id: Mapped[int] = mapped_column(ForeignKey("transitions.id", ondelete="CASCADE"), index=True)
    transition_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=Status.QUEUED, index=True)
    #: The share link it was started through (None: the owner or an admin), for the per-link quota.
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("share_links.id", ondelete="SET NULL"), nullable=True, index=True
    )
    #: The settings and keyframes this render uses: a core.params.RenderSnapshot as JSON, later edits do not
    #: change it. Read it as `render.snapshot` (the column keeps its name: renaming it needs a migration).
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    model: Mapped[str] = mapped_column(String(MAX_MODEL_CHARS))
    frames_total: Mapped[int] = mapped_column(Integer, default=0)
    frames_computed: Mapped[int] = mapped_column(Integer, default=0)
    frames_reused: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: Why a queued render has no frames yet (a switch step search it waits for); None otherwise.
    waiting_for: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)

    transition: Mapped[Transition] = relationship(back_populates="renders")
    frames: Mapped[list[Frame]] = relationship(
        back_populates="render", order_by="Frame.index", cascade="all, delete-orphan"
    )

    @property
    def snapshot(self) -> RenderSnapshot:
        """The stored RenderSnapshot; rows written before a field existed still load (its defaults)."""
        return RenderSnapshot.model_validate(self.params)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or utcnow()
        start = self.started_at
        if start.tzinfo is None:  # SQLite hands back naive datetimes
            start = start.replace(tzinfo=UTC)
        if end.tzinfo is None:
            end = end.replace(tzinfo=UTC)
        return max(0.0, (end - start).total_seconds())


class Frame(Leased, Base):
    """One frame of a render, held by the worker rendering it under a lease (Leased)."""

    __tablename__ = "frames"
    __table_args__ = (UniqueConstraint("render_id", "index", name="uq_frame_index"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    render_id: Mapped[int] = mapped_column(ForeignKey("renders.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    t: Mapped[float] = mapped_column(Float)
    segment: Mapped[int] = mapped_column(Integer)
    local_t: Mapped[float] = mapped_column(Float)
    prompt_a: Mapped[str] = mapped_column(Text)
    prompt_b: Mapped[str] = mapped_column(Text)
    # The frame's own path inputs (core.timeline.FramePlan): noise between two seeds (null: the render's
    # seed), the switch step, and for a shared in-between its start step and anchor frames (indices).
    seed_a: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=None)
    seed_b: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=None)
    noise_t: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    noise_path: Mapped[str] = mapped_column(String(16), default="slerp", server_default="slerp")
    switch_step: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    start_step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    anchor_a: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    anchor_b: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    #: MoCE: steps [0, switch_step) are conditioned on the blend of these prompts (null: prompt_a alone).
    early_a: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    early_b: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    #: Hash of everything that decides the pixels; the image is stored under it.
    key: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default=Status.PENDING, index=True)
    reused: Mapped[bool] = mapped_column(Boolean, default=False)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)

    render: Mapped[Render] = relationship(back_populates="frames")


class Edit(Base):
    """The history of a transition: every change, with the version it produced (services/history.py).

    `before` and `after` hold exactly what changed: {"transition": {field: value}, "keyframes": {id: fields
    or null}} (null: the keyframe does not exist). Undo applies `before`, redo `after`; an undo or a redo is
    an edit too, naming the edit it undid or redid in `target_id`. Rows written before the history existed
    have neither and cannot be undone.
    """

    __tablename__ = "edits"
    __table_args__ = (UniqueConstraint("transition_id", "version", name="uq_edit_version"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    transition_id: Mapped[int] = mapped_column(ForeignKey("transitions.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Who: the share link the edit came through; null for the owner (or the admin token).
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("share_links.id", ondelete="SET NULL"), nullable=True, default=None
    )
    before: Mapped[dict[str, Any] | None] = mapped_column(
        "before_state", JSON(none_as_null=True), nullable=True, default=None
    )
    after: Mapped[dict[str, Any] | None] = mapped_column(
        "after_state", JSON(none_as_null=True), nullable=True, default=None
    )
    target_id: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)


class ShareLink(Base):
    """A link that opens one transition to whoever holds it: role view (read only) or edit.

    Only the SHA-256 of the token is stored; the token itself is shown once, when the link is made.
    """

    __tablename__ = "share_links"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    transition_id: Mapped[int] = mapped_column(ForeignKey("transitions.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(8))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)


class TransitionEventRow(Base):
    """Events of a transition's co-viewing channel in embedded mode (distributed: one Redis Stream each)."""

    __tablename__ = "transition_events"
    __table_args__ = (Index("ix_transition_events_transition_id_id", "transition_id", "id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    transition_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RenderEventRow(Base):
    """Render events for the embedded mode (distributed mode keeps them in Redis Streams).

    Deleted with their render (ON DELETE CASCADE), so no stream ever replays another render's events.
    """

    __tablename__ = "render_events"
    __table_args__ = (Index("ix_render_events_render_id_id", "render_id", "id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    render_id: Mapped[int] = mapped_column(ForeignKey("renders.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FrameScore(Base):
    """What a scorer saw in one frame, keyed by the frame's content key: a reused frame keeps its scores.

    The embedding is kept (float32 bytes) so metrics and flags can be recomputed with other thresholds.
    """

    __tablename__ = "frame_scores"
    __table_args__ = (UniqueConstraint("frame_key", "scorer", name="uq_frame_score"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    frame_key: Mapped[str] = mapped_column(String(64))
    scorer: Mapped[str] = mapped_column(String(32))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    #: Similarity to the frame's two bracketing prompts (text-aware scorers only).
    sim_a: Mapped[float | None] = mapped_column(Float, nullable=True)
    sim_b: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Export(Leased, Base):
    """A file made from a finished render (video, animation, zip of frames, contact sheet).

    One row per (render, format, options): `cache_key` hashes them, so an identical request finds the
    row (and its file) again. The file lives in the frame store's export area under `file_name`.
    """

    __tablename__ = "exports"
    __table_args__ = (UniqueConstraint("cache_key", name="uq_export_cache_key"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    render_id: Mapped[int] = mapped_column(ForeignKey("renders.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    cache_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=Status.QUEUED)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    file_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Suggestion(Leased, Base):
    """A request for suggested intermediate prompts and what the worker proposed (engine/suggesters).

    `items` grows while the worker ranks: [{prompt, position, score, thumbnail_key, source, original,
    progress, detour, state}], best first; `details` says which suggester answered, what was rejected and
    why, and how long each step took.
    """

    __tablename__ = "suggestions"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    transition_id: Mapped[int] = mapped_column(ForeignKey("transitions.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(16), default="bridge")
    #: The segment starts at this keyframe (bridge mode); None: the widest segment.
    after_keyframe_id: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    #: All suggestions at this t (a flagged frame's); None: evenly spaced over the segment.
    position: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)
    count: Mapped[int] = mapped_column(Integer, default=3)
    status: Mapped[str] = mapped_column(String(16), default=Status.QUEUED)
    error: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)


class WorkerHeartbeat(Base):
    """A render worker that is alive: it rewrites its row every few seconds (infra/heartbeat.py).

    Both modes keep these in the database, so `/healthz` can tell "no worker alive" on a laptop too.
    """

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    queue: Mapped[str] = mapped_column(String(200), default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    #: What it is doing now ("render 7: frames 0, 5"), or null when idle.
    busy: Mapped[str | None] = mapped_column(String(200), nullable=True, default=None)


class ConceptSearch(Leased, Base):
    """MoCE's switch step search for one set of inputs (worker/moce.py), found again by `input_key`.

    The key hashes everything that decides the probes: the model and its revision, the keyframe's prompt and
    effective seed, its concepts without the switch step, and the pixel settings. So an undone and redone
    keyframe finds its search again, and identical inputs are searched once. `inputs` holds what was hashed
    (the worker renders exactly that); `trace` grows while the worker probes: [{step, disparity,
    thumbnail_key, sim_first, sim_second}], in probe order.
    """

    __tablename__ = "concept_searches"
    __table_args__ = (UniqueConstraint("input_key", name="uq_concept_search_input_key"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    transition_id: Mapped[int] = mapped_column(ForeignKey("transitions.id", ondelete="CASCADE"), index=True)
    #: The keyframe that first asked (searches outlive keyframe edits; no foreign key).
    keyframe_id: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    input_key: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=Status.QUEUED)
    chosen_step: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    trace: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: How the search went: converged (|D| under the threshold), threshold, budget, scorer, seconds.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)


class Autofix(Leased, Base):
    """The loop run by Segue: find a render's worst problem, probe fixes for it, apply the best, re-render.

    kind "autopilot" repeats rounds (worker/autofix.py) until a stop rule holds; kind "fix" only proposes
    fixes for one problem (`problem_id` of render `render_id`) and stops: a person applies one.
    `status`: queued | running | waiting (a round's render is under way; no lease, the render's end sends
    the next step) | done | failed | cancelled. `rounds`: [{problem, fix, edit_version, before, after,
    outcome}], `proposals` (fix): [{id, kind, label, prompt?, position, frames?, predicted, current,
    thumbnail_key}], best first.
    """

    __tablename__ = "autofixes"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    transition_id: Mapped[int] = mapped_column(ForeignKey("transitions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="autopilot")
    status: Mapped[str] = mapped_column(String(16), default=Status.QUEUED, index=True)
    max_rounds: Mapped[int] = mapped_column(Integer, default=3)
    budget_frames: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    target_smoothness: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)
    problem_id: Mapped[str | None] = mapped_column(String(64), nullable=True, default=None)
    #: The render a fix analyses, or the render an autopilot round waits for.
    render_id: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("share_links.id", ondelete="SET NULL"), nullable=True, default=None
    )
    phase: Mapped[str] = mapped_column(String(200), default="")
    frames_spent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rounds: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    proposals: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    stopped_because: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    error: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)


class Note(Base):
    """A review note pinned to a moment (t) or a range (t to t_end) of a transition (docs/notes.md).

    Pinned to t, never to a frame row: a re-render makes new frames, the note stays where it was.
    `link_id`: the share link it came through (null: the owner), so a comment link may correct its own notes.
    """

    __tablename__ = "notes"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    transition_id: Mapped[int] = mapped_column(ForeignKey("transitions.id", ondelete="CASCADE"), index=True)
    t: Mapped[float] = mapped_column(Float)
    t_end: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(80), default="")
    status: Mapped[str] = mapped_column(String(10), default="open")
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("share_links.id", ondelete="SET NULL"), nullable=True, default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    replies: Mapped[list[NoteReply]] = relationship(
        back_populates="note", cascade="all, delete-orphan", order_by="NoteReply.id", passive_deletes=True
    )


class NoteReply(Base):
    """One reply to a note: rows of their own, so two people replying at once never overwrite each other."""

    __tablename__ = "note_replies"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(80), default="")
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("share_links.id", ondelete="SET NULL"), nullable=True, default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[Note] = relationship(back_populates="replies")


class Study(Base):
    """A set of renders and tasks people answer through participant links (docs/studies.md)."""

    __tablename__ = "studies"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    #: Some of core.studies.TASKS, in the order given.
    tasks: Mapped[list[str]] = mapped_column(JSON)
    #: The study's renders in the researcher's order (items point at them too).
    render_ids: Mapped[list[int]] = mapped_column(JSON)
    concept: Mapped[str | None] = mapped_column(String(200), nullable=True, default=None)
    instructions: Mapped[str] = mapped_column(Text, default="")
    seed: Mapped[int] = mapped_column(Integer, default=0)
    triplet_count: Mapped[int] = mapped_column(Integer, default=0)
    sampler: Mapped[str] = mapped_column(String(16), default="uniform")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    items: Mapped[list[StudyItem]] = relationship(
        order_by="StudyItem.position", cascade="all, delete-orphan", passive_deletes=True
    )
    participants: Mapped[list[StudyParticipant]] = relationship(
        order_by="StudyParticipant.id", cascade="all, delete-orphan", passive_deletes=True
    )


class StudyItem(Base):
    """One question of a study: rate a render, mark a moment of it, or pick the odd one of three frames."""

    __tablename__ = "study_items"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # rate | mark | triplet
    render_id: Mapped[int] = mapped_column(ForeignKey("renders.id", ondelete="CASCADE"), index=True)
    #: A triplet's three frame indices in the order shown; empty for rate and mark (the whole render).
    frames: Mapped[list[int]] = mapped_column(JSON)
    position: Mapped[int] = mapped_column(Integer)


class StudyParticipant(Base):
    """One person's link to a study. The token is kept (not only its hash, unlike share links) so the
    researcher can copy the link again; it opens answering this study's items and nothing else."""

    __tablename__ = "study_participants"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StudyAnswer(Base):
    """A participant's answer to one item: at most one (the unique constraint holds it under races)."""

    __tablename__ = "study_answers"
    __table_args__ = (UniqueConstraint("participant_id", "item_id", name="uq_study_answer"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("study_participants.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("study_items.id", ondelete="CASCADE"), index=True)
    #: The rating (1-5), the t marked (0-1), or the frame index picked as the odd one.
    answer: Mapped[float] = mapped_column(Float)
    comment: Mapped[str] = mapped_column(Text, default="")
    #: Response time, measured in the participant's browser.
    ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StudyBlocks(Leased, Base):
    """Reading each U-Net block for a study's frames (worker/block_features.py): one row per study, asked
    again by the researcher (`queued` with no lease), held under a lease like the other jobs.

    The readings themselves are FrameScore rows (`unet/<block>@t<t>`), shared by every study and render
    holding the frame. `frames_total`/`frames_done`: frame keys to read and read so far (keys read already
    count as done); `readings`: the rows this run stored.
    """

    __tablename__ = "study_blocks"
    __table_args__ = (UniqueConstraint("study_id", name="uq_study_blocks_study"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=Status.QUEUED)  # queued|running|done|failed
    frames_total: Mapped[int] = mapped_column(Integer, default=0)
    frames_done: Mapped[int] = mapped_column(Integer, default=0)
    readings: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
