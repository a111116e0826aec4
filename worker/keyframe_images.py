"""Frames that depend on a keyframe's image (docs/image-endpoints.md): the worker's side.

A render batch is split: frames whose plan has no image go to `Engine.render` as always; the others (the
frames on an image keyframe, and the in-betweens of a segment with an image at either end) are made by
the engine's image morph (engine/morph.py), one call per segment: the image's DDIM-inverted noise (cached
by the engine), AdaIN slerp towards the other end's inverted noise, the interpolated text embedding, DDIM
at guidance 1, and the segment's attention interpolation. The other end of a segment from a prompt
keyframe is that keyframe's own frame (from the frame store, or rendered and stored under its key), so
the in-betweens leave from exactly the picture the prompt keyframe shows. A frame on an image keyframe
shows the image fitted to the render's size (or the reconstruction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.params import KeyframeImage, RenderSnapshot
from core.timeline import FramePlan, check_keys, frame_key, frames_at, keys_of
from core.timeline import TimelineKeyframe as Key
from worker import captions
from worker.images import png, stored_picture


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


def scored_prompts(
    engine: Any,
    snapshot: RenderSnapshot,
    rows: Sequence[ImageFrame | None],
    prompts: Sequence[tuple[str, str]],
    store: Any = None,
) -> list[tuple[str, str]]:
    """The two prompts each frame is scored against (the CLIP scorer's progress from A to B): a picture
    keyframe without a prompt is its caption, the text condition its frames were made with, not ''."""
    if all(row is None for row in rows):
        return list(prompts)

    def text(key: Key) -> str:
        if key.prompt or key.image is None:
            return key.prompt
        return captions.caption_for(engine, None, key.image, snapshot.model_revision, store)

    return [
        (a, b) if row is None else (a or text(row.key_a), b or text(row.key_b))
        for (a, b), row in zip(prompts, rows, strict=True)
    ]


def _pictures(snapshot: RenderSnapshot, store: Any) -> dict[str, Any]:
    """The keyframes' images by SHA-256, read from the frame store."""
    records: dict[str, KeyframeImage] = {k.image.sha256: k.image for k in snapshot.keyframes if k.image}
    return {sha: stored_picture(store, sha) for sha in records}


def render(
    engine: Any,
    snapshot: RenderSnapshot,
    requests: Sequence[Any],
    rows: Sequence[ImageFrame | None],
    plain: Callable[[list[Any]], list[Any]],
    store: Any = None,
) -> list[Any]:
    """The batch's images in order: plain rows through `plain` (Engine.render), image rows by the morph.

    store: the frame store holding the pictures, inversions and captions (default: the studio's; `segue
    render` passes its own)."""
    import torch

    from engine.morph import Picture, fit_image
    from engine.probe import request_of
    from infra.storage import get_store

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
    store = store or get_store()
    pictures = _pictures(snapshot, store)
    keys = check_keys(keys_of(snapshot))
    # Inversions are kept beside the frames too: another worker (or this one restarted) reuses them.
    engine.inverter.keep_in(
        (lambda name: store.read(name) if store.exists(name) else None, store.write), snapshot.model_revision
    )

    def endpoint(key: Key) -> Any:
        if key.image is not None:
            # No prompt: the picture's caption is its text condition (worker/captions.py).
            prompt = key.prompt or captions.caption_for(
                engine, pictures[key.image], key.image, snapshot.model_revision, store
            )
            return Picture(pictures[key.image], prompt)
        # A prompt keyframe: its own frame, as the studio shows it (stored, or rendered and kept by its key).
        (at,) = frames_at(keys, [key.position], seed=snapshot.seed, noise_path=snapshot.noise_interpolation)
        name = frame_key(snapshot.pixels(), at, snapshot.model_revision)
        if store.exists(name):
            image = stored_picture(store, name)
        else:
            (image,) = engine.render(snapshot.pixels(), [request_of(at)])
            store.write(name, png(image))
        return Picture(image, key.prompt)

    for indices in by_segment.values():
        first = rows[indices[0]]
        assert first is not None
        modes = {rows[i].plan.attention for i in indices if rows[i] is not None}  # type: ignore[union-attr]
        mode = next((m for m in modes if m != "none"), "none")
        ts = [rows[i].plan.local_t for i in indices]  # type: ignore[union-attr]
        reconstruct = snapshot.image_endpoints == "reconstruction"
        if not reconstruct and all(t <= 0.0 or t >= 1.0 for t in ts):  # only the pictures themselves
            for i, t in zip(indices, ts, strict=True):
                shown = first.key_a.image if t <= 0.0 else first.key_b.image
                assert shown is not None
                images[i] = fit_image(pictures[shown], snapshot.width, snapshot.height)
            continue
        with torch.inference_mode():
            made = engine.inverter.morph(
                endpoint(first.key_a),
                endpoint(first.key_b),
                ts,
                width=snapshot.width,
                height=snapshot.height,
                steps=snapshot.steps,
                text_interpolation=snapshot.text_interpolation,
                attention_mode=mode,
                attention_steps=snapshot.attention_steps,
                reconstruct=reconstruct,
            )
        for i, image in zip(indices, made, strict=True):
            images[i] = image
    return images


def probe_renderer(
    engine: Any, snapshot: RenderSnapshot, should_cancel: Callable[[], bool] | None = None
) -> Callable[[Any, list[FramePlan]], list[Any]] | None:
    """How a probe pass (engine/probe.place) makes its frames when keyframes carry images: through the image
    path at the probe's steps, so perceptual, adaptive and Beta spacing measure the frames the render will
    show (None: no keyframe image, the engine's plain render)."""
    if not any(k.image is not None for k in snapshot.keyframes):
        return None
    from engine.probe import request_of

    def render_plans(params: Any, plans: list[FramePlan]) -> list[Any]:
        probe = snapshot.model_copy(update={"steps": params.steps})
        return render(
            engine,
            probe,
            [request_of(plan) for plan in plans],
            image_frames(probe, plans),
            lambda plain: engine.render(params, plain, should_cancel=should_cancel),
        )

    return render_plans
