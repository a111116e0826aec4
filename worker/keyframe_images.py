"""Frames that depend on a keyframe's image (docs/image-endpoints.md): the worker's side.

A render batch is split: frames whose plan has no image go to `Engine.render` as always; the others (the
frames on an image keyframe, and the in-betweens of a segment with an image at either end) are made by
the engine's image morph (engine/morph.py), one call per segment: the image's DDIM-inverted noise (cached
by the engine), AdaIN slerp towards the other end's noise (another image's, or the seed noise of a prompt
keyframe), the interpolated text embedding, DDIM at guidance 1, and the segment's attention interpolation.
A frame on an image keyframe shows the image fitted to the render's size (or the reconstruction).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.services import keyframe_images
from core.params import KeyframeImage, RenderSnapshot
from core.timeline import FramePlan, Key, check_keys, frames_at, keys_of


@dataclass(frozen=True)
class ImageFrame:
    """A batch row made by the image morph: its plan, and the segment's two keyframes."""

    plan: FramePlan
    key_a: Key
    key_b: Key


def image_frames(snapshot: RenderSnapshot, frames: Sequence[Any]) -> list[ImageFrame | None]:
    """Per batch row (frame rows: t, local_t), what the image morph makes of it; None: a plain frame."""
    if not any(k.image is not None for k in snapshot.keyframes):
        return [None] * len(frames)
    keys = check_keys(keys_of(snapshot))
    plans = frames_at(
        keys,
        [f.t for f in frames],
        seed=snapshot.seed,
        noise_path=snapshot.noise_interpolation,
        attention=snapshot.attention_interpolation,
    )
    out: list[ImageFrame | None] = []
    for plan in plans:
        out.append(ImageFrame(plan, keys[plan.segment], keys[plan.segment + 1]) if any(plan.images) else None)
    return out


def _pictures(snapshot: RenderSnapshot) -> dict[str, Any]:
    """The keyframes' images by SHA-256, read from the frame store."""
    import PIL.Image

    records: dict[str, KeyframeImage] = {k.image.sha256: k.image for k in snapshot.keyframes if k.image}
    return {
        sha: PIL.Image.open(io.BytesIO(keyframe_images.read(record))).convert("RGB")
        for sha, record in records.items()
    }


def render(
    engine: Any,
    snapshot: RenderSnapshot,
    requests: Sequence[Any],
    rows: Sequence[ImageFrame | None],
    plain: Callable[[list[Any]], list[Any]],
) -> list[Any]:
    """The batch's images in order: plain rows through `plain` (Engine.render), image rows by the morph."""
    import torch

    from engine.morph import Drawn, Picture
    from engine.noise import noise_between

    images: list[Any] = [None] * len(rows)
    plain_rows = [i for i, row in enumerate(rows) if row is None]
    if plain_rows:
        for i, image in zip(plain_rows, plain([requests[i] for i in plain_rows]), strict=True):
            images[i] = image
    by_segment: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        if row is not None:
            by_segment.setdefault(row.plan.segment, []).append(i)
    if not by_segment:
        return images
    pictures = _pictures(snapshot)
    keys = check_keys(keys_of(snapshot))
    shape = (
        1,
        engine.pipe.unet.config.in_channels,
        snapshot.height // engine.pipe.vae_scale_factor,
        snapshot.width // engine.pipe.vae_scale_factor,
    )

    def endpoint(key: Key) -> Any:
        if key.image is not None:
            return Picture(pictures[key.image], key.prompt)
        # A prompt keyframe: the noise its own frame starts from.
        (at,) = frames_at(keys, [key.position], seed=snapshot.seed, noise_path=snapshot.noise_interpolation)
        seed_a = snapshot.seed if at.seed_a is None else at.seed_a
        seed_b = snapshot.seed if at.seed_b is None else at.seed_b
        noise = noise_between(seed_a, seed_b, at.noise_t, at.noise_path, shape)
        return Drawn(key.prompt, noise.to(device=engine.device, dtype=engine.dtype))

    for indices in by_segment.values():
        first = rows[indices[0]]
        assert first is not None
        modes = {rows[i].plan.attention for i in indices if rows[i] is not None}  # type: ignore[union-attr]
        mode = next((m for m in modes if m != "none"), "none")
        with torch.inference_mode():
            made = engine.inverter.morph(
                endpoint(first.key_a),
                endpoint(first.key_b),
                [rows[i].plan.local_t for i in indices],  # type: ignore[union-attr]
                width=snapshot.width,
                height=snapshot.height,
                steps=snapshot.steps,
                text_interpolation=snapshot.text_interpolation,
                attention_mode=mode,
                attention_steps=snapshot.attention_steps,
                reconstruct=snapshot.image_endpoints == "reconstruction",
            )
        for i, image in zip(indices, made, strict=True):
            images[i] = image
    return images
