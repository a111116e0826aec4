"""A transition in seconds: its clock (frames at fps, through the planned positions), the time forms of
keyframes and frames, the soundtrack's place on the timeline, and snapping keyframes to its beats.

Frame i plays at i / fps s and video time 0 is audio time `audio_offset` (docs/animatics.md). Times map to
t through the frames' planned positions (core.timecode.Clock), so with any spacing a keyframe placed at a
time is shown at that time. Probed spacings are placed by a render; before it the uniform grid is used.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from core.params import KEYFRAME_RANGES, SETTING_FIELDS, KeyframeSnapshot, RenderSnapshot
from core.spacing import grid
from core.timecode import Clock, format_time, parse_time
from core.timeline import POSITION_TOLERANCE
from infra.tables import Keyframe, Transition
from services import audio, history, noise_paths
from services.errors import FieldError
from services.history import Actor

log = logging.getLogger(__name__)

#: Keyframes land strictly inside (0, 1) at the forms' precision.
EDGE = 1e-4


def audio_inputs(transition: Transition) -> dict[str, Any]:
    """What a render snapshot freezes of the soundtrack: the record and, for spacing "audio", the energy."""
    record = transition.audio
    if not record:
        return {"soundtrack": None, "audio_energy": None}
    energy = None
    if transition.spacing == "audio":
        try:
            energy = audio.frame_energies(
                audio.analysis_of(record), transition.frames, transition.fps, transition.audio_offset
            )
        except FileNotFoundError:
            log.warning("the analysis of soundtrack %s is not in the frame store", record.get("key"))
    return {"soundtrack": dict(record), "audio_energy": energy}


def snapshot(transition: Transition) -> RenderSnapshot:
    """The transition's settings and keyframes as a render would plan them (no model revision)."""
    return RenderSnapshot(
        **{name: getattr(transition, name) for name in SETTING_FIELDS},
        keyframes=[KeyframeSnapshot.model_validate(k, from_attributes=True) for k in transition.keyframes],
        **audio_inputs(transition),
    )


def clock(transition: Transition) -> Clock:
    """The transition's time axis; the uniform grid when its frames cannot be planned yet."""
    try:
        ts = [p.t for p in noise_paths.plan(snapshot(transition), shared=False)]
    except (FieldError, ValueError):
        ts = grid(max(2, transition.frames))
    return Clock.of(ts, transition.fps)


def keyframe_times(transition: Transition) -> dict[int, float]:
    """Each keyframe's time (s) on the video's clock."""
    c = clock(transition)
    return {k.id: round(c.seconds_of(k.position), 4) for k in transition.keyframes}


def position_at(transition: Transition, time: str | float, field: str = "time") -> float:
    """The t shown at a time ("0:02.5" or seconds): a FieldError naming `field` when it is off the clock."""
    try:
        seconds = parse_time(time, field)
    except ValueError as exc:
        raise FieldError(field, str(exc)) from None
    c = clock(transition)
    t = c.t_at(seconds)
    if not EDGE <= t <= 1 - EDGE or seconds > c.last_time:
        raise FieldError(
            field,
            f"{field} must be strictly between 0:00.00 and {format_time(c.last_time)}, when the last frame "
            f"shows ({c.frames} frames at {c.fps} fps; got {format_time(seconds)})",
        )
    return round(t, 6)


def hold_frames_of(transition: Transition, seconds: float) -> int:
    """A hold given in seconds, as frames at the transition's fps (within the hold's own limit)."""
    frames = max(0, round(seconds * transition.fps))
    high = KEYFRAME_RANGES["hold_frames"].high()
    if frames > high:
        raise FieldError(
            "hold_seconds",
            f"hold_seconds is {frames} frames at {transition.fps} fps; a hold is at most {high:g} frames "
            f"({high / transition.fps:g} s)",
        )
    return frames


def resolve_keyframe(transition: Transition, values: dict[str, Any]) -> dict[str, Any]:
    """`time` -> position and `hold_seconds` -> hold_frames in a keyframe's create/update values."""
    out = dict(values)
    time = out.pop("time", None)
    hold = out.pop("hold_seconds", None)
    if time is not None:
        out["position"] = position_at(transition, time)
    if hold is not None:
        out["hold_frames"] = hold_frames_of(transition, hold)
    return out


# ---------------------------------------------------------------- the soundtrack on the timeline

WAVE_COLUMNS = 400
WAVE_HEIGHT = 40.0


def soundtrack_view(transition: Transition) -> dict[str, Any] | None:
    """What the page draws under the timeline: the waveform as an SVG path in t (x 0..1000), beat ticks
    (t and seconds), and how the soundtrack fits the video (cut or padded)."""
    record = transition.audio
    if not record:
        return None
    c = clock(transition)
    offset = transition.audio_offset
    video = c.duration
    heard = max(0.0, record["duration"] - offset)
    try:
        analysis = audio.analysis_of(record)
    except FileNotFoundError:
        analysis = {"peaks": [], "peaks_per_second": 50}
    peaks, rate = analysis.get("peaks", []), float(analysis.get("peaks_per_second", 50))
    columns: list[float] = [0.0] * WAVE_COLUMNS
    for i, peak in enumerate(peaks):
        seconds = i / rate - offset
        if seconds < 0 or seconds > c.last_time:
            continue
        x = min(WAVE_COLUMNS - 1, int(c.t_at(seconds) * WAVE_COLUMNS))
        columns[x] = max(columns[x], float(peak))
    mid = WAVE_HEIGHT / 2
    parts = []
    for x, peak in enumerate(columns):
        h = max(0.3, peak * (mid - 1))
        parts.append(f"M{(x + 0.5) * 1000 / WAVE_COLUMNS:.1f} {mid - h:.1f}V{mid + h:.1f}")
    beats = []
    for b in record.get("beats", []):
        seconds = b - offset
        if 0 <= seconds <= c.last_time:
            beats.append(
                {"t": round(c.t_at(seconds), 5), "seconds": round(seconds, 3), "label": format_time(b)}
            )
    follows = max(2, math.ceil(heard * c.fps))
    starts = f", from {format_time(offset)} in" if offset else ""
    if abs(heard - video) < 1 / c.fps:
        fit = f"The soundtrack{starts} and the video are both {format_time(video)} long."
    elif heard > video:
        fit = (
            f"The soundtrack ({format_time(record['duration'])}{starts}) is longer than the video "
            f"({format_time(video)}): it is cut at the video's end (fit the frames to hear it all)."
        )
    else:
        fit = (
            f"The soundtrack ({format_time(record['duration'])}{starts}) is shorter than the video "
            f"({format_time(video)}): it is padded with {video - heard:.2f} s of silence."
        )
    return {
        "record": record,
        "path": "".join(parts),
        "beats": beats,
        "fit": fit,
        "follow_frames": follows,
        "duration": video,
        "fps": c.fps,
        "height": WAVE_HEIGHT,
    }


def snap_to_beats(
    db: Any, transition: Transition, *, expected: int | None = None, actor: Actor | None = None
) -> int:
    """Move every inner keyframe to the nearest beat (one undoable edit); returns how many moved."""
    record = transition.audio
    if not record or not record.get("beats"):
        raise FieldError("audio", "there are no beats to snap to: upload a soundtrack with a beat first")
    c = clock(transition)
    offset = transition.audio_offset
    beats = [b - offset for b in record["beats"] if 0 < b - offset < c.last_time]
    targets = [round(c.t_at(b), 6) for b in beats]
    targets = [t for t in targets if EDGE <= t <= 1 - EDGE]
    if not targets:
        raise FieldError("audio", "no beat falls inside the video: check the audio offset")
    moved: list[int] = []

    def change() -> history.Outcome:
        taken = {round(k.position, 6) for k in transition.keyframes if k.is_endpoint}
        inner: list[Keyframe] = sorted(
            (k for k in transition.keyframes if not k.is_endpoint), key=lambda k: k.position
        )
        plan: dict[int, float] = {}
        for keyframe in inner:
            nearest = min(targets, key=lambda t: (abs(t - keyframe.position), t))
            if any(abs(nearest - t) <= POSITION_TOLERANCE for t in taken):
                nearest = keyframe.position  # another keyframe took this beat: this one stays
            plan[keyframe.id] = nearest
            taken.add(round(nearest, 6))
        # Move in two passes so no two keyframes ever share a position in between (a unique constraint).
        for keyframe in inner:
            if abs(plan[keyframe.id] - keyframe.position) > POSITION_TOLERANCE:
                keyframe.position = -float(keyframe.id)
                moved.append(keyframe.id)
        db.flush()
        for keyframe in inner:
            if keyframe.id in moved:
                keyframe.position = plan[keyframe.id]
        return history.Outcome(payload={"moved": {str(i): plan[i] for i in moved}})

    history.edit(db, transition, "snap_to_beats", change, expected=expected, actor=actor)
    return len(moved)
