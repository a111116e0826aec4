"""Noise paths and spacing, without the engine: a keyframe's own settings, and a render's frame plan.

Torch-free like the rest of app/: the plan of uniform and eased spacings is pure core.timeline math;
perceptual and adaptive spacings need a probe render, which a worker does (worker/planning.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from core import spacing as spacings
from core.params import (
    KEYFRAME_FIELDS,
    NULLABLE_SETTINGS,
    PROBED_SPACINGS,
    SEGMENT_FIELDS,
    KeyframeSettings,
    RenderSnapshot,
    caps,
)
from core.timeline import FramePlan, keys_of, plan_frames, share
from infra.tables import Keyframe
from services.errors import FieldError

#: What a keyframe setting goes back to when a PATCH sets it to null.
_CLEARED: dict[str, Any] = {name: info.default for name, info in KeyframeSettings.model_fields.items()}


def keyframe_changes(patch: BaseModel) -> dict[str, Any]:
    """The keyframe settings a PATCH gives, explicit nulls included (null: back to 'not set')."""
    return {
        name: getattr(patch, name)
        for name in KEYFRAME_FIELDS
        if name in patch.model_fields_set or getattr(patch, name, None) is not None
    }


def cleared_settings(patch: BaseModel) -> dict[str, Any]:
    """The transition settings a PATCH explicitly sets to null (back to their default, 'not set')."""
    return {
        name: None
        for name in NULLABLE_SETTINGS
        if name in patch.model_fields_set and getattr(patch, name) is None
    }


def apply_keyframe_settings(keyframe: Keyframe, changes: dict[str, Any]) -> None:
    """Set a keyframe's own settings; the end keyframe starts no segment, so it takes no segment setting."""
    given = {name: value for name, value in changes.items() if name in KEYFRAME_FIELDS}
    if keyframe.is_end:
        for name in SEGMENT_FIELDS:
            if given.get(name) not in (None, False):
                raise FieldError(
                    name,
                    f"{name} is a setting of the segment a keyframe starts; the end keyframe starts none",
                )
    for name, value in given.items():
        setattr(keyframe, name, _CLEARED[name] if value is None else value)


def shared_step(snapshot: RenderSnapshot) -> int:
    """The step in-betweens start at under trajectory sharing (0: every frame rendered in full)."""
    if snapshot.in_between != "shared" or snapshot.steps < 2:
        return 0
    wanted = snapshot.shared_from_step or max(1, snapshot.steps // 2)
    return min(wanted, snapshot.steps - 1)


def audio_spacing(snapshot: RenderSnapshot) -> Callable[[float], float]:
    """spacing "audio": the curve of the soundtrack's onset energy frozen in the snapshot."""
    energy = snapshot.audio_energy
    if not energy or len(energy) != snapshot.frames - 1:
        raise FieldError(
            "spacing",
            'spacing "audio" follows the soundtrack: upload one (Soundtrack, under the timeline) or choose '
            "another spacing",
        )
    return spacings.audio_curve(energy, snapshot.smooth)


def plan(
    snapshot: RenderSnapshot,
    times: list[float] | None = None,
    *,
    spacing: Callable[[float], float] | None = None,
    shared: bool = True,
) -> list[FramePlan]:
    """Every frame of a render: positions by the spacing (a probe pass gives `times` for adaptive, a
    curve for perceptual; before it, probed spacings plan the uniform grid), keyframe behaviours, noise
    path, and trajectory sharing. Too many frames is a FieldError naming `frames`."""
    named: str | Callable[[float], float] = (
        "uniform" if snapshot.spacing in PROBED_SPACINGS else snapshot.spacing
    )
    if snapshot.spacing == "audio" and spacing is None:
        named = audio_spacing(snapshot)
    try:
        plans = plan_frames(
            keys_of(snapshot),
            snapshot.frames,
            spacing=spacing or named,
            times=times,
            seed=snapshot.seed,
            noise_path=snapshot.noise_interpolation,
            max_frames=caps().frames,
            attention=snapshot.attention_interpolation,
        )
    except ValueError as exc:
        raise FieldError("frames", str(exc)) from None
    return share(plans, shared_step(snapshot)) if shared else plans
