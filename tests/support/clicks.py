"""Generated soundtracks for the animatics tests: a click track at a known tempo, encoded by PyAV or wave;
and the audio files the local frame store holds."""

from __future__ import annotations

import io
import wave

import numpy as np

RATE = 44100


def click_samples(
    seconds: float = 8.0, bpm: float = 120.0, first: float = 0.25
) -> tuple[np.ndarray, list[float]]:
    """Mono float32 samples with a 10 ms 2 kHz click on every beat, and the click times (s)."""
    n = int(seconds * RATE)
    samples = np.zeros(n, np.float32)
    clicks = [float(c) for c in np.arange(first, seconds - 0.05, 60.0 / bpm)]
    length = int(0.01 * RATE)
    burst = (np.sin(2 * np.pi * 2000 * np.arange(length) / RATE) * np.hanning(length)).astype(np.float32)
    for c in clicks:
        i = int(round(c * RATE))
        samples[i : i + length] += burst[: n - i]
    return samples * 0.6, clicks


def wav_bytes(samples: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32000).astype("<i2").tobytes())
    return buffer.getvalue()


def click_wav(seconds: float = 8.0, bpm: float = 120.0, first: float = 0.25) -> tuple[bytes, list[float]]:
    samples, clicks = click_samples(seconds, bpm, first)
    return wav_bytes(samples), clicks


def encoded(samples: np.ndarray, container: str, codec: str, rate: int = RATE) -> bytes:
    """The samples in another container and codec (mp3, ogg/vorbis, flac...), with PyAV."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            samples.reshape(1, -1).astype(np.float32), format="flt", layout="mono"
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def stored_audio() -> list[str]:
    """The names of the files in the local frame store's audio folder (soundtracks and their analyses)."""
    from infra.storage import get_store

    root = get_store().local_root
    assert root is not None
    return (
        sorted(p.name for p in (root / "audio").rglob("*") if p.is_file())
        if (root / "audio").exists()
        else []
    )
