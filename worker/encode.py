"""Frames -> files: MP4 (H.264) and WebM (VP9) with PyAV, animated GIF and WebP, a zip of PNGs and a
contact sheet with Pillow. The one encoder behind both the export task (worker/exports.py) and
`segue render` (worker/headless.py). Torch-free: it reads PNG files and writes one output file.

Timing of videos and animations: every frame shows for 1/fps s; with `hold_keyframes` the frame nearest
each keyframe position shows for `hold_seconds` instead; with `loop` the frames play forward and then
backward (without repeating the two ends), so a looping player shows a seamless ping-pong.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from services.exports import FORMATS, ExportOptions

Progress = Callable[[float], None]


@dataclass(frozen=True)
class SourceFrame:
    """One rendered frame: its index in the render, its t on the timeline, and its PNG file.

    An in-between (docs/animatics.md) is synthesized, never a rendered frame: `made` says how ("flow" or
    "crossfade") and `between` from which rendered frames (index a, index b, weight).
    """

    index: int
    t: float
    path: Path
    made: str = ""
    between: tuple[int, int, float] | None = None


@dataclass(frozen=True)
class Soundtrack:
    """The sound of a video: an audio file, and the audio time at which the first frame plays."""

    path: Path
    offset: float = 0.0


def format_for_path(path: Path | str) -> str:
    """The export format a file name asks for by its extension (.png is a contact sheet)."""
    suffix = Path(path).suffix.lower()
    for name, info in FORMATS.items():
        if info.extension == suffix:
            return name
    known = ", ".join(sorted(info.extension for info in FORMATS.values()))
    raise ValueError(f"cannot tell the format of {Path(path).name!r} from its extension; use one of {known}")


def frame_name(index: int, t: float, count: int) -> str:
    """A frame's file name in a zip or a frames directory: index and t, e.g. 0007_t0.3043.png."""
    width = max(4, len(str(max(0, count - 1))))
    return f"{index:0{width}d}_t{t:.4f}.png"


def held_frames(ts: Sequence[float], keyframe_positions: Sequence[float]) -> set[int]:
    """For each keyframe position, the frame nearest to it (positions in `ts`, not frame indices)."""
    if not ts:
        return set()
    return {min(range(len(ts)), key=lambda i: (abs(ts[i] - p), i)) for p in keyframe_positions}


def playback(
    ts: Sequence[float], keyframe_positions: Sequence[float], options: ExportOptions
) -> list[tuple[int, int]]:
    """The frames in the order they play, each with how many ticks (1/fps s) it shows."""
    order = list(range(len(ts)))
    if options.loop and len(ts) > 2:
        order += list(range(len(ts) - 2, 0, -1))
    held = held_frames(ts, keyframe_positions) if options.hold_keyframes else set()
    hold_ticks = max(1, round(options.hold_seconds * options.fps))
    return [(i, hold_ticks if i in held else 1) for i in order]


def durations_ms(ticks: Sequence[int], fps: int, unit_ms: int = 1) -> list[int]:
    """Per-frame durations in multiples of unit_ms whose running sum stays on the exact clock.

    GIF counts in 10 ms units: 12 fps as 80 ms per frame would run 4 % fast; rounding the cumulative
    time instead keeps the average at exactly 1/fps.
    """
    out, elapsed_ticks, shown = [], 0, 0
    for n in ticks:
        elapsed_ticks += n
        end = round(elapsed_ticks * 1000 / fps / unit_ms) * unit_ms
        out.append(max(unit_ms, end - shown))
        shown += out[-1]
    return out


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


@contextmanager
def _atomic(out: Path) -> Iterator[Path]:
    """A temporary file beside `out`, moved over it only when writing succeeded."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".tmp-", suffix=out.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)


def encode(
    frames: Sequence[SourceFrame],
    out: Path,
    options: ExportOptions,
    keyframe_positions: Sequence[float] = (),
    *,
    title: str = "",
    on_progress: Progress | None = None,
    threads: int = 0,
    metrics: dict[str, Any] | None = None,
    sound: Soundtrack | None = None,
    source_fps: int | None = None,
    notes: list[dict[str, Any]] | None = None,
) -> Path:
    """Write `frames` (in order) to `out` as options.format; returns `out`. Written atomically.

    `metrics` (the render's scores: per frame and summary) go into a zip as metrics.json, `notes` (the
    transition's review notes, docs/notes.md) as notes.json when there are any. `sound`: MP4 and
    WebM carry it (AAC, Opus), cut or padded to the video's length; other formats carry none.
    `source_fps`: the render's frame rate, from which in-betweens (options.inbetweens) reach options.fps."""
    if not frames:
        raise ValueError("there are no frames to export")
    frames = sorted(frames, key=lambda f: f.index)
    report = on_progress or (lambda _fraction: None)
    with _atomic(out) as tmp, tempfile.TemporaryDirectory(prefix="segue-inbetweens-") as scratch:
        if options.inbetweens == "flow" and options.format != "contact_sheet":
            frames = with_inbetweens(frames, source_fps or options.fps, options.fps, Path(scratch))
        match options.format:
            case "mp4" | "webm":
                _video(frames, tmp, options, keyframe_positions, report, threads, sound)
            case "gif" | "webp":
                _animation(frames, tmp, options, keyframe_positions, report)
            case "zip":
                _zip(frames, tmp, report, metrics, source_fps, options.fps, notes)
            case "contact_sheet":
                _contact_sheet(frames, tmp, keyframe_positions, title, report)
            case other:  # pragma: no cover - ExportOptions allows only the formats above
                raise ValueError(f"unknown export format {other!r}")
    report(1.0)
    return out


# ---------------------------------------------------------------- video

VIDEO_CODECS: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    # H.264 in yuv420p plays everywhere; crf 18 is visually lossless for these frames.
    "mp4": ("libx264", {"crf": "18", "preset": "medium"}, {"movflags": "+faststart"}),
    "webm": ("libvpx-vp9", {"crf": "30", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}, {}),
}


def _even(image: Image.Image) -> Image.Image:
    """yuv420p needs even sides: pad an odd side by one pixel (Segue's sizes are multiples of 8)."""
    width, height = image.size
    if width % 2 == 0 and height % 2 == 0:
        return image
    return image.crop((0, 0, width + width % 2, height + height % 2))


def _video(
    frames: Sequence[SourceFrame],
    out: Path,
    options: ExportOptions,
    keyframe_positions: Sequence[float],
    report: Progress,
    threads: int,
    sound: Soundtrack | None = None,
) -> None:
    import av
    from av.video.stream import VideoStream

    codec, codec_options, container_options = VIDEO_CODECS[options.format]
    plan = playback([f.t for f in frames], keyframe_positions, options)
    first = _even(_rgb(frames[0].path))
    time_base = Fraction(1, options.fps)
    with av.open(str(out), "w", format=options.format, container_options=container_options) as container:
        stream = container.add_stream(codec, rate=options.fps)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height = first.size
        stream.pix_fmt = "yuv420p"
        stream.options = codec_options
        stream.codec_context.thread_count = max(0, threads)
        # Both streams exist before the first packet is muxed (the header is written then).
        audio = None
        if sound is not None:
            audio_codec, rate = AUDIO_CODECS[options.format]
            audio = container.add_stream(audio_codec, rate=rate, layout="stereo")
        pts = 0
        for step, (position, ticks) in enumerate(plan):
            pixels = np.asarray(_even(_rgb(frames[position].path)))
            for _ in range(ticks):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts, frame.time_base = pts, time_base
                pts += 1
                for packet in stream.encode(frame):
                    container.mux(packet)
            report(0.98 * (step + 1) / len(plan))
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None and audio is not None:
            _sound(container, audio, sound, pts / options.fps)


#: The sound codec of each video format and its sample rate (Opus works at 48 kHz).
AUDIO_CODECS: dict[str, tuple[str, int]] = {"mp4": ("aac", 48000), "webm": ("libopus", 48000)}


def soundtrack_samples(path: Path, rate: int, offset: float, seconds: float) -> np.ndarray:
    """Stereo float32 samples (2, n) of the audio from `offset` for `seconds`: cut, or padded with silence."""
    import av

    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
    chunks = []
    with av.open(str(path)) as source:
        for frame in source.decode(audio=0):
            chunks += [f.to_ndarray() for f in resampler.resample(frame)]
        chunks += [f.to_ndarray() for f in resampler.resample(None)]
    audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((2, 0), np.float32)
    start, count = round(offset * rate), round(seconds * rate)
    window = audio[:, start : start + count]
    if window.shape[1] < count:
        window = np.pad(window, ((0, 0), (0, count - window.shape[1])))
    return np.ascontiguousarray(window, dtype=np.float32)


def _sound(container: Any, stream: Any, sound: Soundtrack, seconds: float) -> None:
    """Write the soundtrack into a video's audio stream: the first frame at audio time sound.offset."""
    import av

    rate = stream.codec_context.sample_rate
    samples = soundtrack_samples(sound.path, rate, sound.offset, seconds)
    size = stream.codec_context.frame_size or 1024
    for start in range(0, samples.shape[1], size):
        chunk = samples[:, start : start + size]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


# ---------------------------------------------------------------- in-betweens


def with_inbetweens(
    frames: Sequence[SourceFrame], source_fps: int, target_fps: int, scratch: Path
) -> list[SourceFrame]:
    """The rendered frames plus in-betweens synthesized by optical flow (a crossfade where flow fails), so
    the frames played at target_fps last as long as the rendered ones at source_fps. Numbered anew."""
    from worker.inbetween import flow_inbetween, schedule

    out: list[SourceFrame] = []
    for j, slot in enumerate(schedule(len(frames), source_fps, target_fps)):
        a = frames[slot.a]
        if slot.weight <= 0.0:
            out.append(SourceFrame(j, a.t, a.path))
            continue
        b = frames[slot.a + 1]
        pixels, how = flow_inbetween(np.asarray(_rgb(a.path)), np.asarray(_rgb(b.path)), slot.weight)
        path = scratch / f"inbetween-{j}.png"
        Image.fromarray(pixels).save(path, format="PNG", compress_level=1)
        t = a.t + (b.t - a.t) * slot.weight
        out.append(SourceFrame(j, t, path, made=how, between=(a.index, b.index, slot.weight)))
    return out


# ---------------------------------------------------------------- animations


def _animation(
    frames: Sequence[SourceFrame],
    out: Path,
    options: ExportOptions,
    keyframe_positions: Sequence[float],
    report: Progress,
) -> None:
    plan = playback([f.t for f in frames], keyframe_positions, options)
    gif = options.format == "gif"
    durations = durations_ms([ticks for _, ticks in plan], options.fps, unit_ms=10 if gif else 1)

    def images() -> Iterator[Image.Image]:
        for step, (position, _) in enumerate(plan):
            image = _rgb(frames[position].path)
            if gif:
                # One adaptive palette (median cut) per frame: the colours of each frame, not a fixed set.
                image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
            yield image
            report(0.9 * (step + 1) / len(plan))

    sequence = images()
    first = next(sequence)
    common = {"save_all": True, "append_images": sequence, "duration": durations, "loop": 0}
    if gif:
        first.save(out, format="GIF", optimize=False, disposal=1, **common)
    else:
        first.save(out, format="WEBP", quality=90, method=4, **common)


# ---------------------------------------------------------------- zip

#: Fixed timestamps make the same frames give the same zip, byte for byte.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def inbetween_metadata(frames: Sequence[SourceFrame], fps: int, source_fps: int | None) -> dict[str, Any]:
    """Which frames of an export were rendered and which synthesized (how, from which, where flow failed)."""
    entries = []
    for frame in frames:
        entry: dict[str, Any] = {
            "index": frame.index,
            "t": round(frame.t, 6),
            "made": frame.made or "rendered",
        }
        if frame.between is not None:
            entry.update(between=[frame.between[0], frame.between[1]], weight=frame.between[2])
        entries.append(entry)
    return {
        "fps": fps,
        "source_fps": source_fps,
        "frames": entries,
        "crossfades": [e["index"] for e in entries if e["made"] == "crossfade"],
    }


def _zip(
    frames: Sequence[SourceFrame],
    out: Path,
    report: Progress,
    metrics: dict[str, Any] | None,
    source_fps: int | None = None,
    fps: int = 12,
    notes: list[dict[str, Any]] | None = None,
) -> None:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        if notes:
            info = zipfile.ZipInfo("notes.json", date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, json.dumps({"notes": notes}, indent=2, ensure_ascii=False) + "\n")
        if metrics is not None:
            info = zipfile.ZipInfo("metrics.json", date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        if any(frame.made for frame in frames):
            info = zipfile.ZipInfo("inbetweens.json", date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            meta = inbetween_metadata(frames, fps, source_fps)
            archive.writestr(info, json.dumps(meta, indent=2, sort_keys=True) + "\n")
        for step, frame in enumerate(frames):
            name = frame_name(frame.index, frame.t, len(frames))
            if frame.made:  # synthesized, never a rendered frame: its name says so
                name = name.replace(".png", f"_{frame.made}.png")
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, frame.path.read_bytes())  # PNGs already: stored, not recompressed
            report(0.98 * (step + 1) / len(frames))


# ---------------------------------------------------------------- contact sheet

SHEET_BACKGROUND = (250, 250, 247)
SHEET_INK = (29, 29, 40)
SHEET_MUTED = (110, 110, 120)
SHEET_ACCENT = (79, 70, 229)
LABEL_HEIGHT = 18
GAP = 8


def _font(size: int) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, bool]:
    """DejaVu Sans when the system has it (arrows, accents, most scripts), else Pillow's own font.

    The second value says whether the font covers more than Latin-1.
    """
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size), True
    except OSError:
        pass
    try:
        return ImageFont.load_default(size=size), False
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default(), False


def _drawable(text: str, wide: bool) -> str:
    if wide:
        return text
    text = text.replace("\u2192", "->").replace("\u2026", "...")
    return "".join(c if ord(c) < 256 else "?" for c in text)


def sheet_layout(count: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(columns, rows, cell width, cell height) of a contact sheet: near square, cells 128-256 px wide."""
    columns = min(count, 12, max(1, math.ceil(math.sqrt(count))))
    rows = math.ceil(count / columns)
    cell_width = min(256, max(128, width)) if count <= 64 else min(160, max(96, width))
    cell_height = max(1, round(height * cell_width / width))
    return columns, rows, cell_width, cell_height


def _contact_sheet(
    frames: Sequence[SourceFrame],
    out: Path,
    keyframe_positions: Sequence[float],
    title: str,
    report: Progress,
) -> None:
    first = _rgb(frames[0].path)
    columns, rows, cell_width, cell_height = sheet_layout(len(frames), *first.size)
    header = 34 if title else GAP
    sheet = Image.new(
        "RGB",
        (GAP + columns * (cell_width + GAP), header + rows * (cell_height + LABEL_HEIGHT + GAP) + GAP),
        SHEET_BACKGROUND,
    )
    draw = ImageDraw.Draw(sheet)
    (small, _), (big, wide) = _font(12), _font(16)
    if title:
        text, ellipsis = _drawable(title, wide), ("\u2026" if wide else "...")
        kept = text
        while kept and draw.textlength(text, font=big) > sheet.width - 2 * GAP:
            kept = kept[:-1].rstrip()
            text = kept + ellipsis
        draw.text((GAP, 9), text, fill=SHEET_INK, font=big)
    held = held_frames([f.t for f in frames], keyframe_positions)
    upscale = cell_width >= first.width and cell_width % first.width == 0
    resample = Image.Resampling.NEAREST if upscale else Image.Resampling.LANCZOS
    for position, frame in enumerate(frames):
        row, column = divmod(position, columns)
        x = GAP + column * (cell_width + GAP)
        y = header + row * (cell_height + LABEL_HEIGHT + GAP)
        image = _rgb(frame.path).resize((cell_width, cell_height), resample)
        sheet.paste(image, (x, y))
        colour = SHEET_ACCENT if position in held else SHEET_MUTED
        if position in held:  # at a keyframe: framed in the accent colour
            box = (x - 3, y - 3, x + cell_width + 2, y + cell_height + 2)
            draw.rectangle(box, outline=SHEET_ACCENT, width=3)
        draw.text((x, y + cell_height + 3), f"#{frame.index}  t={frame.t:.4f}", fill=colour, font=small)
        report(0.95 * (position + 1) / len(frames))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    out.write_bytes(buffer.getvalue())
