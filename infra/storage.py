"""The frame store: images kept under the hash of what determines their pixels, and export files.

Two stores behind one interface, chosen by settings (SEGUE_FRAME_STORE):
- `LocalFrameStore` (default): a directory. Frames at `<dir>/<k[:2]>/<k>.png`, exports at `<dir>/exports/`.
  Every process that renders or serves must see the same directory (one machine, or a shared volume).
- `S3FrameStore`: a bucket of any S3-compatible object store (AWS S3, MinIO, Ceph, R2...). Objects are
  `<prefix>frames/<k[:2]>/<k>.png` and `<prefix>exports/<name>`. Web processes and workers on other
  machines then share nothing but the database, Redis and the bucket.

Both write atomically (a temp file renamed; an S3 PUT is all or nothing), so a redelivered batch overwrites
and never leaves half a file. Frame keys are content hashes, so a stored frame never changes: the web app
serves them as immutable.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from infra.config import Settings, get_settings

#: A frame key: the hex digest core.timeline.frame_key makes.
KEY_PATTERN = re.compile(r"^[0-9a-f]{16,128}$")
#: An export's file name: its cache key and an extension (services/exports.py).
EXPORT_NAME_PATTERN = re.compile(r"^[0-9a-f]{16,128}\.[a-z0-9]{2,5}$")
#: A soundtrack's (or its analysis') name: the SHA-256 of the uploaded bytes and an extension.
AUDIO_NAME_PATTERN = re.compile(r"^[0-9a-f]{64}(?:\.[a-z0-9]{2,8}){1,2}$")
#: Frames never change under their key (it hashes everything that sets their pixels).
IMMUTABLE = "public, max-age=31536000, immutable"
#: Requests to an object store at once when checking or fetching many frames (boto3's default pool is 10).
PARALLEL_REQUESTS = 8


class StoreError(RuntimeError):
    """The frame store cannot be reached or refuses a request."""


@dataclass(frozen=True)
class Stored:
    """A stored file as the store hands it out; the web app makes the HTTP response (app/downloads.py).

    Exactly one of `path` (a file on this machine: the web server answers byte ranges itself), `data` (the
    whole content) or `chunks` (a remote object's body, streamed; `size` and `content_range` describe the
    part of it asked for).
    """

    path: Path | None = None
    data: bytes | None = None
    chunks: Iterator[bytes] | None = None
    size: int | None = None
    content_range: str | None = None


class FrameStore(ABC):
    url_prefix = "/media/frames"

    #: Whether the web app serves frames from a directory itself (StaticFiles) or asks the store.
    local_root: Path | None = None

    # ------------------------------------------------------------ frames

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    def existing(self, keys: Iterable[str]) -> set[str]:
        """Which of `keys` are stored (a render's cache hits, an export's check)."""
        return {key for key in set(keys) if self.exists(key)}

    @abstractmethod
    def write(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def read(self, key: str) -> bytes:
        """The frame's PNG; FileNotFoundError when it is not stored."""

    def url(self, key: str) -> str:
        return f"{self.url_prefix}/{key[:2]}/{key}.png"

    @contextmanager
    def files(self, keys: Iterable[str]) -> Iterator[dict[str, Path]]:
        """The frames as files on this machine, for the encoders; fetched into a temp dir when remote."""
        wanted = sorted(set(keys))
        with tempfile.TemporaryDirectory(prefix="segue-frames-") as scratch:
            paths = {key: Path(scratch) / f"{key}.png" for key in wanted}

            def fetch(key: str) -> None:
                paths[key].write_bytes(self.read(key))

            with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL_REQUESTS, len(wanted)))) as pool:
                list(pool.map(fetch, wanted))  # list(): the first failure is raised here
            yield paths

    @abstractmethod
    def open_frame(self, key: str) -> Stored:
        """The frame to serve (only used when the app does not serve a directory); FileNotFoundError when
        it is not stored."""

    # ------------------------------------------------------------ exports

    @abstractmethod
    def has_export(self, name: str) -> bool: ...

    @abstractmethod
    def put_export(self, name: str, source: Path) -> int:
        """Store a finished export file under `name`; returns its size in bytes."""

    @abstractmethod
    def delete_export(self, name: str) -> None: ...

    @abstractmethod
    def open_export(self, name: str, range_header: str | None = None) -> Stored:
        """The export file to download, a byte range of it when asked (FileNotFoundError when gone)."""

    # ------------------------------------------------------------ soundtracks (docs/animatics.md)
    # Stored by content hash like frames: `name` is AUDIO_NAME_PATTERN (<sha256>.<ext>, or .json analysis).

    @abstractmethod
    def has_audio(self, name: str) -> bool: ...

    @abstractmethod
    def put_audio(self, name: str, data: bytes) -> None: ...

    @abstractmethod
    def read_audio(self, name: str) -> bytes:
        """The stored bytes; FileNotFoundError when they are not stored."""

    @abstractmethod
    def open_audio(self, name: str, range_header: str | None = None) -> Stored:
        """The audio file for a browser, byte ranges answered (an <audio> element seeks with them)."""

    # ------------------------------------------------------------ health

    @abstractmethod
    def check(self) -> None:
        """Raise StoreError when the store cannot be written (for /healthz and start-up)."""

    def describe(self) -> str:
        return type(self).__name__


# ---------------------------------------------------------------- a directory


class LocalFrameStore(FrameStore):
    """A directory. Writes are atomic, so a redelivered task overwrites and never duplicates."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.local_root = root

    def path(self, key: str) -> Path:
        # Two-level fan-out keeps directories small for long sessions.
        return self.root / key[:2] / f"{key}.png"

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def write(self, key: str, data: bytes) -> None:
        _atomic_write(self.path(key), data)

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    @contextmanager
    def files(self, keys: Iterable[str]) -> Iterator[dict[str, Path]]:
        yield {key: self.path(key) for key in set(keys)}

    def open_frame(self, key: str) -> Stored:
        return Stored(path=_existing(self.path(key)))

    def export_path(self, name: str) -> Path:
        return self.root / "exports" / name

    def has_export(self, name: str) -> bool:
        return self.export_path(name).is_file()

    def put_export(self, name: str, source: Path) -> int:
        target = self.export_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target.stat().st_size

    def delete_export(self, name: str) -> None:
        self.export_path(name).unlink(missing_ok=True)

    def open_export(self, name: str, range_header: str | None = None) -> Stored:
        return Stored(path=_existing(self.export_path(name)))

    def audio_path(self, name: str) -> Path:
        if not AUDIO_NAME_PATTERN.match(name):
            raise FileNotFoundError(name)
        return self.root / "audio" / name[:2] / name

    def has_audio(self, name: str) -> bool:
        return self.audio_path(name).is_file()

    def put_audio(self, name: str, data: bytes) -> None:
        _atomic_write(self.audio_path(name), data)

    def read_audio(self, name: str) -> bytes:
        return self.audio_path(name).read_bytes()

    def open_audio(self, name: str, range_header: str | None = None) -> Stored:
        return Stored(path=_existing(self.audio_path(name)))

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".probe-")
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            raise StoreError(
                f"the frame directory {self.root} is not writable: {exc.strerror or exc}"
            ) from exc

    def describe(self) -> str:
        return f"directory {self.root}"


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(path.name)
    return path


def _atomic_write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- an S3-compatible bucket

#: Bytes per chunk when streaming an object to a client.
CHUNK = 256 * 1024


class S3FrameStore(FrameStore):
    """A bucket of an S3-compatible object store, reached with boto3.

    `url`: s3://bucket or s3://bucket/prefix. `endpoint_url`: the store's HTTP endpoint (empty for AWS).
    `public_url`: when browsers can read the bucket directly (a public bucket or a CDN in front), frame
    URLs point there; otherwise the web app reads frames from the bucket and serves them itself.
    """

    def __init__(
        self,
        url: str,
        endpoint_url: str = "",
        access_key_id: str = "",
        secret_access_key: str = "",
        region: str = "us-east-1",
        public_url: str = "",
        timeout_seconds: float = 10.0,
    ) -> None:
        import boto3
        from botocore.config import Config

        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"SEGUE_FRAME_STORE must look like s3://bucket[/prefix], got {url!r}")
        self.bucket = parts.netloc
        prefix = parts.path.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url or None
        self.public_url = public_url.rstrip("/")
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            region_name=region or "us-east-1",
            config=Config(
                connect_timeout=timeout_seconds,
                read_timeout=timeout_seconds,
                retries={"max_attempts": 4, "mode": "standard"},
                # Path-style addressing works with every S3-compatible server (MinIO has no bucket DNS).
                s3={"addressing_style": "path"},
            ),
        )

    # object names
    def frame_object(self, key: str) -> str:
        return f"{self.prefix}frames/{key[:2]}/{key}.png"

    def export_object(self, name: str) -> str:
        return f"{self.prefix}exports/{name}"

    @contextmanager
    def _request(self, what: str) -> Iterator[None]:
        """Errors of the store itself (unreachable, refusing, timing out) become StoreError: a 503 in the
        app, a visible failure in a worker. A missing object stays FileNotFoundError (or None from _head)."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except FileNotFoundError:
            raise
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            raise StoreError(f"the object store ({self.describe()}) failed to {what}: {exc}") from exc

    def _missing(self, exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def _head(self, name: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with self._request(f"look up {name}"):
            try:
                return dict(self.client.head_object(Bucket=self.bucket, Key=name))
            except ClientError as exc:
                if self._missing(exc):
                    return None
                raise

    def _get(self, name: str, **extra: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        with self._request(f"read {name}"):
            try:
                return dict(self.client.get_object(Bucket=self.bucket, Key=name, **extra))
            except ClientError as exc:
                if self._missing(exc):
                    raise FileNotFoundError(name) from exc
                raise

    # frames
    def exists(self, key: str) -> bool:
        return self._head(self.frame_object(key)) is not None

    def existing(self, keys: Iterable[str]) -> set[str]:
        # One HEAD per key, many at once: a 600-frame re-render must not wait for 600 round trips in a row.
        wanted = sorted(set(keys))
        if len(wanted) < 2:
            return {key for key in wanted if self.exists(key)}
        with ThreadPoolExecutor(max_workers=min(PARALLEL_REQUESTS, len(wanted))) as pool:
            found = pool.map(self.exists, wanted)
        return {key for key, there in zip(wanted, found, strict=True) if there}

    def write(self, key: str, data: bytes) -> None:
        with self._request(f"write frame {key}"):
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.frame_object(key),
                Body=data,
                ContentType="image/png",
                CacheControl=IMMUTABLE,
            )

    def read(self, key: str) -> bytes:
        body = self._get(self.frame_object(key))["Body"]
        with self._request(f"read frame {key}"):
            return bytes(body.read())

    def url(self, key: str) -> str:
        if self.public_url:
            return f"{self.public_url}/{self.frame_object(key)}"
        return super().url(key)

    def open_frame(self, key: str) -> Stored:
        return Stored(data=self.read(key))

    # exports
    def has_export(self, name: str) -> bool:
        return self._head(self.export_object(name)) is not None

    def put_export(self, name: str, source: Path) -> int:
        # upload_file splits big files into parts; the object appears only when every part is in.
        with self._request(f"store export {name}"):
            self.client.upload_file(str(source), self.bucket, self.export_object(name))
        return source.stat().st_size

    def delete_export(self, name: str) -> None:
        with self._request(f"delete export {name}"):
            self.client.delete_object(Bucket=self.bucket, Key=self.export_object(name))

    def open_export(self, name: str, range_header: str | None = None) -> Stored:
        return self._open(self.export_object(name), range_header)

    # soundtracks
    def audio_object(self, name: str) -> str:
        if not AUDIO_NAME_PATTERN.match(name):
            raise FileNotFoundError(name)
        return f"{self.prefix}audio/{name[:2]}/{name}"

    def has_audio(self, name: str) -> bool:
        return self._head(self.audio_object(name)) is not None

    def put_audio(self, name: str, data: bytes) -> None:
        with self._request(f"store audio {name}"):
            self.client.put_object(Bucket=self.bucket, Key=self.audio_object(name), Body=data)

    def read_audio(self, name: str) -> bytes:
        body = self._get(self.audio_object(name))["Body"]
        with self._request(f"read audio {name}"):
            return bytes(body.read())

    def open_audio(self, name: str, range_header: str | None = None) -> Stored:
        return self._open(self.audio_object(name), range_header)

    def _open(self, name: str, range_header: str | None) -> Stored:
        """An object's body to stream, the asked byte range of it when there is one."""
        extra = {"Range": range_header} if range_header else {}
        obj = self._get(name, **extra)
        body = obj["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK)
            finally:
                body.close()

        return Stored(chunks=chunks(), size=int(obj["ContentLength"]), content_range=obj.get("ContentRange"))

    # health
    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist (MinIO and test servers start empty)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if not self._missing(exc) and "NoSuchBucket" not in str(exc):
                raise
            self.client.create_bucket(Bucket=self.bucket)

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"the object store bucket {self.bucket!r} is not reachable: {exc}") from exc

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")


# ---------------------------------------------------------------- the configured store


def thumbnail_url(entry: dict[str, Any]) -> str | None:
    """The URL of an image a worker stored for a row's entry (a suggestion's or a probe's thumbnail)."""
    key = entry.get("thumbnail_key")
    return get_store().url(key) if key else None


def get_store(settings: Settings | None = None) -> FrameStore:
    settings = settings or get_settings()
    if settings.frame_store.startswith("s3://"):
        return _s3_store(
            settings.frame_store,
            settings.s3_endpoint_url,
            settings.s3_access_key_id,
            settings.s3_secret_access_key,
            settings.s3_region,
            settings.s3_public_url,
        )
    return LocalFrameStore(settings.frames_dir)


def prepare_store(settings: Settings | None = None) -> FrameStore:
    """Make the store ready at start-up (the directory, or the bucket if missing); StoreError if it can't."""
    store = get_store(settings)
    if isinstance(store, S3FrameStore):
        try:
            store.ensure_bucket()
        except Exception as exc:
            raise StoreError(f"cannot reach or create the bucket of {store.describe()}: {exc}") from exc
    store.check()
    return store


@lru_cache(maxsize=4)
def _s3_store(
    url: str, endpoint_url: str, access_key_id: str, secret_access_key: str, region: str, public_url: str
) -> S3FrameStore:
    # One boto3 client per configuration and process: clients are thread-safe and slow to build.
    return S3FrameStore(url, endpoint_url, access_key_id, secret_access_key, region, public_url)
