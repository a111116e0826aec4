"""A transition's soundtrack: check and decode an upload, analyse it, store it, and time frames by it.

- `check_upload` is the one gate every uploaded file passes (size, a readable audio stream, not truncated,
  not empty, not too long); it answers a FieldError naming `audio` and stores nothing. It is kept small and
  alone so a shared safe-upload helper can replace it.
- The analysis (librosa, the field's standard): the percussive part by HPSS, its onset strength
  (`onset_strength`), beat times (`beat_track`) and onsets, and a peak envelope for the waveform. The
  original bytes and the analysis are stored in the frame store under the SHA-256 of the bytes; the
  transition row keeps a small record (key, name, duration, sample rate, beats).
- Timing: the frames of a transition play at `fps`; video time 0 is audio time `audio_offset`. A
  soundtrack longer than the video is cut at the video's end, a shorter one padded with silence.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from core.uploads import plain_reason
from infra.config import get_settings
from infra.storage import get_store
from services.errors import FieldError

#: The longest soundtrack taken, in seconds.
MAX_SECONDS = 600.0
#: Analysis runs on mono audio at this rate; onset strength frames are HOP samples apart.
ANALYSIS_RATE = 22050
HOP = 512
#: Waveform peaks per second kept in the analysis (drawn downsampled again by the page).
PEAKS_PER_SECOND = 50
#: Containers taken, by PyAV's format name, and the media type a browser gets.
MEDIA_TYPES: dict[str, str] = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "mov,mp4,m4a,3gp,3g2,mj2": "audio/mp4",
}
EXTENSIONS: dict[str, str] = {
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/flac": ".flac",
    "audio/mp4": ".m4a",
}
#: A decoded length below this share of what the file declares means the file was cut short.
TRUNCATED_SHARE = 0.9


@dataclass(frozen=True)
class Decoded:
    """An accepted upload: mono samples at ANALYSIS_RATE and what the file says about itself."""

    samples: np.ndarray
    duration: float
    sample_rate: int
    channels: int
    media_type: str


def max_bytes() -> int:
    return int(get_settings().max_audio_mb * 1_000_000)


def check_upload(data: bytes) -> Decoded:
    """Accept an uploaded audio file or refuse it with a FieldError naming `audio` (nothing is stored)."""
    import av

    limit = max_bytes()
    if not data:
        raise FieldError(
            "audio", "audio is an empty file (0 bytes): upload a WAV, MP3, OGG, FLAC or M4A file"
        )
    if len(data) > limit:
        raise FieldError(
            "audio",
            f"audio is {len(data) / 1e6:.1f} MB; this server takes at most {limit / 1e6:g} MB "
            "(SEGUE_MAX_AUDIO_MB)",
        )
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise FieldError(
            "audio",
            "audio is not an audio file this server can read (WAV, MP3, OGG, FLAC, M4A): "
            + plain_reason(exc),
        ) from None
    with container:
        media_type = MEDIA_TYPES.get(container.format.name)
        streams = list(container.streams.audio)
        if media_type is None or not streams:
            raise FieldError(
                "audio",
                f"audio must be WAV, MP3, OGG, FLAC or M4A with a sound stream "
                f"(got {container.format.long_name or container.format.name})",
            )
        stream = streams[0]
        declared = _declared_seconds(container, stream)
        if declared > MAX_SECONDS + 1:
            raise FieldError("audio", _too_long(declared))
        sample_rate = int(stream.codec_context.sample_rate or stream.rate or 0)
        channels = int(stream.codec_context.channels or 1)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=ANALYSIS_RATE)
        chunks: list[np.ndarray] = []
        count = 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    count += chunk.size
                if count > (MAX_SECONDS + 1) * ANALYSIS_RATE:
                    raise FieldError("audio", _too_long(count / ANALYSIS_RATE))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as exc:
            reason = plain_reason(exc)
            raise FieldError("audio", f"audio is damaged or truncated: decoding stopped ({reason})") from None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    duration = samples.size / ANALYSIS_RATE
    if samples.size == 0 or sample_rate <= 0:
        raise FieldError("audio", "audio holds no sound (zero length)")
    missing = _wav_missing_bytes(data)
    if missing:
        raise FieldError(
            "audio",
            f"audio is truncated: its header declares {missing} bytes of sound more than the file holds",
        )
    if declared > 0 and duration < TRUNCATED_SHARE * declared - 0.05:
        raise FieldError(
            "audio",
            f"audio is truncated: the file declares {declared:.2f} s but only {duration:.2f} s decode",
        )
    if duration > MAX_SECONDS:
        raise FieldError("audio", _too_long(duration))
    return Decoded(samples, duration, sample_rate, channels, media_type)


def _too_long(seconds: float) -> str:
    return f"audio is {seconds / 60:.1f} minutes long; a soundtrack is at most {MAX_SECONDS / 60:g} minutes"


def _wav_missing_bytes(data: bytes) -> int:
    """A WAV whose data chunk declares more bytes than the file holds was cut short: how many are missing
    (ffmpeg times a WAV by its file size, so the header is the only witness)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return 0
    at = 12
    while at + 8 <= len(data):
        chunk, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
        if chunk == b"data":
            held = len(data) - (at + 8)
            return max(0, size - held) if size != 0xFFFFFFFF else 0  # streamed WAVs say "unknown"
        at += 8 + size + (size & 1)
    return 0


def _declared_seconds(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0


# ---------------------------------------------------------------- analysis


def analyse(samples: np.ndarray) -> dict[str, Any]:
    """Onset strength of the percussive part, beats, onsets and a peak envelope (plain JSON values)."""
    import librosa

    y = samples.astype(np.float32)
    if y.size < HOP * 4:  # too short for an STFT: pad with silence
        y = np.pad(y, (0, HOP * 4 - y.size))
    percussive = librosa.effects.percussive(y)
    strength = librosa.onset.onset_strength(y=percussive, sr=ANALYSIS_RATE, hop_length=HOP)
    _tempo, beats = librosa.beat.beat_track(
        onset_envelope=strength, sr=ANALYSIS_RATE, hop_length=HOP, units="time"
    )
    onsets = librosa.onset.onset_detect(
        onset_envelope=strength, sr=ANALYSIS_RATE, hop_length=HOP, units="time"
    )
    per_peak = ANALYSIS_RATE // PEAKS_PER_SECOND
    columns = max(1, math.ceil(samples.size / per_peak))
    padded = np.pad(np.abs(samples), (0, columns * per_peak - samples.size))
    peaks = padded.reshape(columns, per_peak).max(axis=1)
    top = float(peaks.max()) or 1.0
    return {
        "hop_seconds": HOP / ANALYSIS_RATE,
        "strength": [round(float(x), 4) for x in strength],
        "beats": [round(float(b), 4) for b in beats],
        "onsets": [round(float(o), 4) for o in onsets],
        "tempo": round(float(np.atleast_1d(_tempo)[0]), 2),
        "peaks_per_second": PEAKS_PER_SECOND,
        "peaks": [round(float(p) / top, 3) for p in peaks],
    }


@dataclass(frozen=True)
class Upload:
    """A checked and analysed soundtrack, not stored yet: the record the transition keeps and its files."""

    record: dict[str, Any]
    files: dict[str, bytes]

    def store(self) -> None:
        """Write the files (by content: writing one twice changes nothing); the analysis first."""
        store = get_store()
        for key, data in self.files.items():
            store.put_audio(key, data)


def check_and_analyse(data: bytes, name: str) -> Upload:
    """Check and analyse an upload, storing nothing (UploadRefused when it is not a soundtrack we take)."""
    decoded = check_upload(data)
    analysis = analyse(decoded.samples)
    digest = hashlib.sha256(data).hexdigest()
    key = digest + EXTENSIONS[decoded.media_type]
    files = {f"{digest}.analysis.json": json.dumps(analysis).encode(), key: data}
    record = {
        "key": key,
        "name": (name or "soundtrack")[-200:],
        "media_type": decoded.media_type,
        "duration": round(decoded.duration, 4),
        "sample_rate": decoded.sample_rate,
        "channels": decoded.channels,
        "size": len(data),
        "beats": analysis["beats"],
        "tempo": analysis["tempo"],
    }
    return Upload(record, files)


def analysis_of(record: dict[str, Any]) -> dict[str, Any]:
    """The stored analysis of a soundtrack record (FileNotFoundError when the store lost it)."""
    return dict(_analysis(str(record["key"]).split(".", 1)[0], get_store().describe()))


@lru_cache(maxsize=16)
def _analysis(digest: str, store: str) -> dict[str, Any]:
    # Content-addressed, so never stale: every page and API answer maps times through it.
    return dict(json.loads(get_store().read_audio(f"{digest}.analysis.json")))


# ---------------------------------------------------------------- timing


def frame_energies(analysis: dict[str, Any], frames: int, fps: int, offset: float) -> list[float]:
    """The onset strength heard between base frame i and i + 1 (frame i plays at offset + i / fps)."""
    strength = np.asarray(analysis["strength"], dtype=np.float64)
    hop = float(analysis["hop_seconds"])
    cumulative = np.concatenate([[0.0], np.cumsum(strength)])

    def upto(seconds: float) -> float:
        k = min(max(seconds / hop, 0.0), float(strength.size))
        whole = int(math.floor(k))
        partial = strength[whole] * (k - whole) if whole < strength.size else 0.0
        return float(cumulative[whole] + partial)

    # Onset frame k covers [k - 1/2, k + 1/2) hops: shift by half a hop so a hit counts where it is heard.
    edges = [upto(offset + i / fps + hop / 2) for i in range(frames)]
    return [max(0.0, b - a) for a, b in zip(edges, edges[1:], strict=False)]
