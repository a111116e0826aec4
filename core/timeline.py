"""Timeline math: which keyframes bracket a frame, the order frames are rendered in, and a frame's identity.

Pure Python on purpose: the web app imports this module to plan renders, and it must not pull in torch.
The keyframe behaviours (seed, hold, cut, per-segment frames, noise path, switch step), the spacing and
trajectory sharing are defined here; docs/user-guide.md "Paths and spacing" says the same in prose.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Self

from core import spacing as spacings
from core.params import (
    SAVINGS_OFF,
    AttentionInterpolation,
    KeyframeSnapshot,
    NoiseInterpolation,
    PixelSettings,
    RenderSnapshot,
    neighbour_reuse_step,
)

#: Positions closer than this are the same point on the timeline, everywhere (API, forms, planner).
POSITION_TOLERANCE = 1e-6


@dataclass(frozen=True)
class KeyConcepts:
    """MoCE on a keyframe, as the planner needs it: the first concept and the resolved switch step N."""

    first: str
    switch_step: int


@dataclass(frozen=True)
class TimelineKeyframe:
    """A keyframe on the timeline: a prompt pinned at a position in [0, 1], and its own behaviour.

    seed: pins the noise latent here (None: inner keyframes leave the noise alone, the endpoints use the
    transition's seed). hold_frames: n extra frames showing this keyframe. The rest apply to the segment
    this keyframe starts: cut (no blending: its frames show this keyframe until the next one), frames
    (the segment's frame count), noise_interpolation (its noise path), switch_step (see FrameInputs),
    attention_interpolation (its attention interpolation; None: the transition's).
    concepts (MoCE): every frame of both segments touching this keyframe denoises its first N steps on
    the early blend (this keyframe's first concept instead of its prompt); it takes precedence over the
    segment's plain switch_step. image: the SHA-256 of the keyframe's image (docs/image-endpoints.md):
    its frame shows the image, and the segments touching it start or end at the image's inverted noise.
    """

    position: float
    prompt: str
    seed: int | None = None
    hold_frames: int = 0
    cut: bool = False
    frames: int | None = None
    noise_interpolation: NoiseInterpolation | None = None
    switch_step: int | None = None
    concepts: KeyConcepts | None = None
    attention_interpolation: AttentionInterpolation | None = None
    image: str | None = None


# The planner's keyframe is a KeyframeSnapshot with its concepts and image resolved (keys_of): same fields.
assert {f.name for f in fields(TimelineKeyframe)} == set(KeyframeSnapshot.model_fields)


@dataclass(frozen=True)
class FrameInputs:
    """What one frame is made of, declared once for the planner (FramePlan) and the engine (FrameRequest).

    Its text embedding is the blend of prompt_a and prompt_b at local_t; its noise latent is
    noise_path(noise(seed_a), noise(seed_b), noise_t) (a seed of None is the transition's seed).
    switch_step k: steps [0, k) are conditioned on prompt_a alone, the rest on the blend; with early_a /
    early_b set (MoCE), steps [0, k) are conditioned on the blend of early_a and early_b at local_t instead
    (either left None: its prompt). attention (AID): how the frame's attention layers mix the keys and
    values of `ends`, the frames of its segment's two keyframes (rendered beside it).
    """

    prompt_a: str
    prompt_b: str
    local_t: float
    seed_a: int | None = None
    seed_b: int | None = None
    noise_t: float = 0.0
    noise_path: str = "slerp"
    switch_step: int | None = None
    early_a: str | None = None
    early_b: str | None = None
    attention: str = "none"
    ends: tuple[Self, Self] | None = None

    def inputs(self) -> dict[str, Any]:
        """The shared fields by name, `ends` left out (each variant builds its own kind of ends)."""
        return {f.name: getattr(self, f.name) for f in fields(FrameInputs) if f.name != "ends"}


@dataclass(frozen=True)
class FramePosition:
    """Where a frame sits: its number, its global t and the segment it falls in."""

    index: int
    t: float
    segment: int


# Bases in this order put the position first: FramePlan(index, t, segment, prompt_a, ...).
@dataclass(frozen=True)
class FramePlan(FrameInputs, FramePosition):
    """A planned frame: where it sits (FramePosition) and what it is made of (FrameInputs).

    start_step k > 0 (trajectory sharing): the frame starts at step k from the slerp of the step-k
    latents of frames anchor_a and anchor_b (indices), weighted by where t sits between their t.
    attention is "none" with no ends on a keyframe (local t 0 or 1), in a cut, or where the segment has
    no attention interpolation. image_a / image_b: the images (SHA-256) of the segment's keyframes, if
    they have one (the frame is then made from their inverted noise).
    """

    start_step: int = 0
    anchor_a: int | None = None
    anchor_b: int | None = None
    image_a: str | None = None
    image_b: str | None = None

    @property
    def images(self) -> tuple[str | None, str | None]:
        """The images this frame depends on: a frame on a keyframe only on that keyframe's."""
        if self.local_t <= 0.0:
            return (self.image_a, None)
        if self.local_t >= 1.0:
            return (None, self.image_b)
        return (self.image_a, self.image_b)


def frame_times(n: int) -> list[float]:
    """n evenly spaced positions with exact endpoints 0.0 and 1.0."""
    if n < 2:
        raise ValueError(f"frames must be at least 2, got {n}")
    return [0.0 if i == 0 else 1.0 if i == n - 1 else i / (n - 1) for i in range(n)]


def check_keys(keys: Sequence[TimelineKeyframe]) -> list[TimelineKeyframe]:
    """Sorted keyframes, validated: the first at 0, the last at 1, positions strictly increasing."""
    ordered = sorted(keys, key=lambda k: k.position)
    if len(ordered) < 2:
        raise ValueError("a timeline needs at least two keyframes (start and end)")
    if abs(ordered[0].position) > POSITION_TOLERANCE or abs(ordered[-1].position - 1.0) > POSITION_TOLERANCE:
        raise ValueError("the first keyframe must sit at position 0 and the last at position 1")
    for left, right in zip(ordered, ordered[1:], strict=False):
        if right.position - left.position <= POSITION_TOLERANCE:
            raise ValueError(f"two keyframes share position {right.position}")
    return ordered


def locate(t: float, keys: Sequence[TimelineKeyframe]) -> tuple[int, float]:
    """(segment index, local t) for a global t; keys must be sorted and checked.

    A frame exactly on an inner keyframe belongs to the segment that starts there (local t = 0),
    so it shows that keyframe's prompt unblended.
    """
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be within 0..1, got {t}")
    last = len(keys) - 2
    for segment in range(last + 1):
        start, end = keys[segment].position, keys[segment + 1].position
        if t < end or segment == last:
            local = (t - start) / (end - start)
            return segment, min(1.0, max(0.0, local))
    raise AssertionError("unreachable: keys cover 0..1")


def _key_concepts(keyframe: KeyframeSnapshot) -> KeyConcepts | None:
    concepts = keyframe.concepts
    if concepts is None:
        return None
    if not isinstance(concepts.switch_step, int):
        raise ValueError(
            f"the keyframe at {keyframe.position:g} has switch step {concepts.switch_step!r} for its "
            "concepts: a search must make it a number first (the studio searches before it renders; "
            "a headless render needs a number)"
        )
    return KeyConcepts(concepts.first, concepts.switch_step)


def keys_of(snapshot: RenderSnapshot) -> list[TimelineKeyframe]:
    """A stored render's keyframes as timeline keys (a MoCE switch step must be a number by now)."""
    return [
        TimelineKeyframe(
            position=k.position,
            prompt=k.prompt,
            seed=k.seed,
            hold_frames=k.hold_frames or 0,
            cut=bool(k.cut),
            frames=k.frames,
            noise_interpolation=k.noise_interpolation,
            switch_step=k.switch_step,
            concepts=_key_concepts(k),
            attention_interpolation=k.attention_interpolation,
            image=k.image.sha256 if k.image is not None else None,
        )
        for k in snapshot.keyframes
    ]


def per_segment(keys: Sequence[TimelineKeyframe]) -> bool:
    """Whether any segment sets its own frame count (then every segment is spaced on its own)."""
    return any(k.frames for k in keys[:-1])


def base_times(
    keys: Sequence[TimelineKeyframe], n: int, spacing: str | Callable[[float], float] = "uniform"
) -> list[float]:
    """The frames' positions before holds: n positions over the whole timeline spaced by the curve, or,
    when a keyframe sets `frames`, each segment's own count spaced by the curve within the segment.

    In per-segment mode a segment without `frames` gets as many frames as the n-frame grid puts in it
    (at least one); every segment's first frame sits on its keyframe, and one last frame sits at 1.
    `spacing` is a curve name (core.spacing.CURVES) or a curve (a perceptual core.spacing.Warp).
    """
    ordered = check_keys(keys)
    fn = spacings.curve(spacing) if isinstance(spacing, str) else spacing
    if not per_segment(ordered):
        return spacings.apply(fn, spacings.grid(n))
    grid = spacings.grid(n)
    times: list[float] = []
    for left, right in zip(ordered, ordered[1:], strict=False):
        count = left.frames or max(
            1,
            sum(
                1
                for t in grid
                if left.position - POSITION_TOLERANCE <= t < right.position - POSITION_TOLERANCE
            ),
        )
        local = (
            fn.restricted(left.position, right.position) if isinstance(fn, spacings.CumulativeCurve) else fn
        )
        width = right.position - left.position
        times += [left.position + width * u for u in spacings.apply(local, [j / count for j in range(count)])]
    return [*times, 1.0]


def _noise_anchors(keys: Sequence[TimelineKeyframe], seed: int | None) -> list[tuple[float, int | None]]:
    """(position, seed) where the noise is pinned: the endpoints (own seed or the transition's) and every
    inner keyframe that has a seed."""
    inner = [(k.position, k.seed) for k in keys[1:-1] if k.seed is not None]
    start = keys[0].seed if keys[0].seed is not None else seed
    end = keys[-1].seed if keys[-1].seed is not None else seed
    return [(0.0, start), *inner, (1.0, end)]


def noise_at(t: float, anchors: Sequence[tuple[float, int | None]]) -> tuple[int | None, int | None, float]:
    """(seed_a, seed_b, noise_t) at t: the pinned seeds around t and where t sits between them."""
    last = len(anchors) - 2
    for i in range(last + 1):
        (pa, sa), (pb, sb) = anchors[i], anchors[i + 1]
        if t < pb - POSITION_TOLERANCE or i == last:
            local = 0.0 if t <= pa + POSITION_TOLERANCE else (t - pa) / (pb - pa)
            return sa, sb, min(1.0, max(0.0, local))
    raise AssertionError("unreachable: anchors cover 0..1")


def _content(
    ordered: Sequence[TimelineKeyframe],
    anchors: Sequence[tuple[float, int | None]],
    t: float,
    noise_path: str,
    attention: str = "none",
) -> FramePlan:
    """What the frame at t shows (index 0; the caller numbers frames). `attention` is the transition's."""
    segment, local_t = locate(t, ordered)
    key = ordered[segment]
    at = t
    if key.cut and 0.0 < local_t < 1.0:  # at 1 (the end keyframe) the cut is over
        at, local_t = key.position, 0.0
    seed_a, seed_b, noise_t = noise_at(at, anchors)
    end = ordered[segment + 1]
    early_a = early_b = None
    switch_step = key.switch_step
    if key.concepts is not None or end.concepts is not None:
        # MoCE: the first concept stands in for its keyframe's prompt for the first N steps, on both sides
        # of the keyframe; N blends between two MoCE keyframes. It takes precedence over the plain switch.
        early_a = key.concepts.first if key.concepts else key.prompt
        early_b = end.concepts.first if end.concepts else end.prompt
        if key.concepts is not None and end.concepts is not None:
            n_a, n_b = key.concepts.switch_step, end.concepts.switch_step
            switch_step = round(n_a + (n_b - n_a) * local_t)
        else:
            switch_step = (key.concepts or end.concepts).switch_step  # type: ignore[union-attr]
    mode = key.attention_interpolation or attention
    ends = None
    if mode != "none" and 0.0 < local_t < 1.0:
        # The keyframes' own frames, whose keys and values this frame's attention mixes.
        ends = (
            _content(ordered, anchors, key.position, noise_path),
            _content(ordered, anchors, end.position, noise_path),
        )
    else:
        mode = "none"
    return FramePlan(
        index=0,
        t=t,
        segment=segment,
        prompt_a=key.prompt,
        prompt_b=ordered[segment + 1].prompt,
        local_t=local_t,
        seed_a=seed_a,
        seed_b=seed_b,
        noise_t=noise_t,
        noise_path=key.noise_interpolation or noise_path,
        switch_step=switch_step,
        early_a=early_a,
        early_b=early_b,
        attention=mode,
        ends=ends,
        image_a=key.image,
        image_b=end.image,
    )


def frames_at(
    keys: Sequence[TimelineKeyframe],
    positions: Sequence[float],
    *,
    seed: int | None = None,
    noise_path: str = "slerp",
    attention: str = "none",
) -> list[FramePlan]:
    """The frames at given positions (no holds), numbered in the given order: for probe passes."""
    ordered = check_keys(keys)
    anchors = _noise_anchors(ordered, seed)
    return [
        replace(_content(ordered, anchors, t, noise_path, attention), index=i)
        for i, t in enumerate(positions)
    ]


def cut_boundaries(keys: Sequence[TimelineKeyframe]) -> list[float]:
    """Positions where a cut jumps: the keyframe after each cut segment."""
    ordered = check_keys(keys)
    return [right.position for left, right in zip(ordered, ordered[1:], strict=False) if left.cut]


def plan_frames(
    keys: Sequence[TimelineKeyframe],
    n: int,
    *,
    spacing: str | Callable[[float], float] = "uniform",
    times: Sequence[float] | None = None,
    seed: int | None = None,
    noise_path: str = "slerp",
    max_frames: int | None = None,
    attention: str = "none",
) -> list[FramePlan]:
    """Every frame of a render of the timeline given by keys.

    Positions come from `base_times(keys, n, spacing)`, or are `times` when given (a probe pass placed
    them; 0 and 1 must be among them). Then, per frame: the segment and blend (a frame exactly on a
    keyframe shows it alone); in a cut segment the frame shows the segment's start keyframe exactly as
    the frame on that keyframe does (prompt and noise), while reporting its own t; the noise between the
    pinned seeds around it (`seed` is the transition's, None means "the transition's" downstream); the
    segment's noise path (else `noise_path`), switch step and attention interpolation (else `attention`,
    the transition's). Finally each keyframe with hold_frames = h
    gets h extra frames right after its own frame (one is added at its position if none falls there),
    all with the keyframe's t. `max_frames` refuses a plan with more frames than that.
    """
    ordered = check_keys(keys)
    if times is None:
        positions = base_times(ordered, n, spacing)
    else:
        positions = sorted(float(t) for t in times)
        if not positions or positions[0] != 0.0 or positions[-1] != 1.0:
            raise ValueError("planned positions must include 0 and 1")
    anchors = _noise_anchors(ordered, seed)

    def content(t: float) -> FramePlan:
        return _content(ordered, anchors, t, noise_path, attention)

    plans = [content(t) for t in positions]
    for key in ordered:
        if key.hold_frames <= 0:
            continue
        at = next((i for i, p in enumerate(plans) if abs(p.t - key.position) <= POSITION_TOLERANCE), None)
        if at is None:
            at = next(i for i, p in enumerate(plans) if p.t > key.position)
            plans.insert(at, content(key.position))
        plans[at + 1 : at + 1] = [plans[at]] * key.hold_frames
    if max_frames is not None and len(plans) > max_frames:
        raise ValueError(
            f"this timeline plans {len(plans)} frames (segments, holds and spacing together); "
            f"at most {max_frames} are allowed"
        )
    return [replace(plan, index=index) for index, plan in enumerate(plans)]


#: Trajectory sharing: frames at even indices (and every frame pinned to a keyframe) are anchors.
SHARED_STRIDE = 2


def _pinned(plan: FramePlan) -> bool:
    return plan.local_t <= 0.0 or plan.local_t >= 1.0


def share(plans: Sequence[FramePlan], start_step: int) -> list[FramePlan]:
    """Mark the in-betweens of trajectory sharing: start_step, anchor_a and anchor_b.

    Anchors are rendered in full: both ends, every frame on a keyframe (and holds and cut frames, which
    show one), and every SHARED_STRIDE-th frame. Every other frame is an in-between between the nearest
    anchors on each side, provided both lie in its segment (or the right one on the next keyframe), so a
    cut is never blended over. An in-between starts at step start_step from the slerp of the anchors'
    latents at that step and costs steps - start_step U-Net evaluations instead of steps.
    """
    if start_step <= 0:
        return list(plans)
    last = len(plans) - 1
    anchors = [i for i, p in enumerate(plans) if i in (0, last) or i % SHARED_STRIDE == 0 or _pinned(p)]
    # A segment with an image endpoint is made from inverted noise by its own sampler: never shared.
    is_anchor = set(anchors)
    anchors = [i for i in anchors if plans[i].image_a is None and plans[i].image_b is None]
    out = list(plans)
    for i, plan in enumerate(plans):
        if i in is_anchor or plan.image_a is not None or plan.image_b is not None or not anchors:
            continue
        below, above = [j for j in anchors if j < i], [j for j in anchors if j > i]
        if not below or not above:
            continue
        a, b = max(below), min(above)
        left, right = plans[a], plans[b]
        same_left = left.segment == plan.segment
        same_right = right.segment == plan.segment or (
            right.segment == plan.segment + 1 and right.local_t <= 0.0
        )
        if same_left and same_right and right.t > left.t:
            out[i] = replace(plan, start_step=start_step, anchor_a=a, anchor_b=b)
    return out


def shared_weight(plan: FramePlan, plans: Sequence[FramePlan]) -> float:
    """Where an in-between sits between its anchors, in t (0: anchor_a, 1: anchor_b)."""
    if plan.anchor_a is None or plan.anchor_b is None:
        raise ValueError(f"frame {plan.index} is not an in-between")
    return weight_between(plan.t, plans[plan.anchor_a].t, plans[plan.anchor_b].t)


def weight_between(t: float, ta: float, tb: float) -> float:
    """Where t sits between ta and tb, clamped to [0, 1] (anchors at the same t: halfway)."""
    return min(1.0, max(0.0, (t - ta) / (tb - ta))) if tb > ta else 0.5


def render_order(n: int) -> list[int]:
    """Frame indices coarse to fine: both ends, the middle, then the quarters and so on.

    A person sees the shape of the whole transition after a few frames instead of waiting for the end.
    """
    if n <= 0:
        return []
    order = [0] if n == 1 else [0, n - 1]
    seen = set(order)
    intervals = [(0, n - 1)]
    while intervals:
        next_intervals = []
        for lo, hi in intervals:
            if hi - lo < 2:
                continue
            mid = (lo + hi) // 2
            if mid not in seen:
                seen.add(mid)
                order.append(mid)
            next_intervals += [(lo, mid), (mid, hi)]
        intervals = next_intervals
    return order


def frame_key(
    pixels: PixelSettings,
    plan: FramePlan,
    model_revision: str = "",
    shared: tuple[str, str, float] | None = None,
) -> str:
    """Content hash of a frame: equal keys mean equal pixels, so a stored image can be reused.

    A frame at local t 0 or 1 is just one prompt, so its key does not depend on the other keyframe.
    The model's revision is part of the key: frames of older weights are not reused after an update.
    Only what changes the pixels is hashed, in a normal form: a frame with a single seed hashes that seed
    as `seed` (so with the transition's seed the key is the one Segue always gave it); a frame between two
    seeds hashes both, its noise t and the noise path; an effective switch step hashes it with prompt_a;
    a shared in-between (trajectory sharing) hashes its start step, its anchors' keys and its weight
    (`shared`: (key of anchor_a, key of anchor_b, weight)). A MoCE frame (early_a / early_b) whose early
    blend differs from its blend hashes the early blend and N (`early`), at local t 0 and 1 too; one whose
    early blend is its blend is the plain frame without a switch, and N >= steps is the early blend alone.
    An in-between under attention interpolation hashes its mode, the number of steps it mixes and its
    ends' keys (`attention`); any other frame hashes none of the attention settings, so a frame without
    attention interpolation keeps the key it had before the setting existed. A shared in-between under
    neighbour reuse hashes the step its reuse begins at (`neighbour_reuse`); no other frame hashes it. A
    frame that depends on a keyframe's image (FramePlan.images) hashes the images and what the endpoints
    show (`images`); any other frame hashes neither.
    """
    if plan.early_a is not None or plan.early_b is not None:
        moce = _moce_blends(pixels, plan)
        if moce is not None:
            return _moce_key(pixels, plan, model_revision, shared, *moce)
        # The early steps see what the rest sees: the plain frame, no switch.
        plan = replace(plan, early_a=None, early_b=None, switch_step=None)
    switch = plan.switch_step or 0
    if plan.local_t > 0.0 and plan.prompt_a != plan.prompt_b and switch >= pixels.steps:
        blend = (plan.prompt_a, plan.prompt_a, 0.0)  # conditioned on prompt_a for every step
        switch = 0
    elif plan.local_t <= 0.0:
        blend = (plan.prompt_a, plan.prompt_a, 0.0)
    elif plan.local_t >= 1.0:
        blend = (plan.prompt_b, plan.prompt_b, 0.0)
    else:
        blend = (plan.prompt_a, plan.prompt_b, round(plan.local_t, 12))
    payload = {"v": 2, **_pixel_payload(pixels), "model_revision": model_revision, "blend": blend}
    if blend[0] == blend[1]:
        # With a single prompt, lerp and slerp give the same embedding.
        payload["text_interpolation"] = "-"
    if switch > 0 and plan.local_t > 0.0 and plan.prompt_a != plan.prompt_b:
        payload["switch"] = [switch, plan.prompt_a]
    return _digest(pixels, plan, payload, shared)


Blend = tuple[str, str, float]

#: Settings a frame key hashes only where they act (attention interpolation: _digest).
_ATTENTION_SETTINGS = ("attention_interpolation", "attention_steps")
#: Settings a frame key hashes only where they act: neighbour reuse on shared in-betweens, what image
#: endpoints show on frames that depend on an image (_digest).
_WHERE_THEY_ACT = (*_ATTENTION_SETTINGS, "neighbour_reuse_from", "image_endpoints")
#: How image endpoints are inverted and sampled (engine/morph.py); a change of method changes this tag.
IMAGE_METHOD = "ddim-inversion-g1"


def mixed_steps(pixels: PixelSettings) -> int:
    """How many of the first steps attention interpolation acts on (the engine uses the same count)."""
    return min(pixels.steps, round(pixels.attention_steps * pixels.steps))


def _pixel_payload(pixels: PixelSettings) -> dict[str, Any]:
    """The pixel settings a key hashes: savings that are off are left out, so older keys stay valid, and
    attention interpolation is hashed where it acts (_digest), not here."""
    off = {name for name, value in SAVINGS_OFF.items() if getattr(pixels, name) == value}
    if pixels.deep_cache_interval <= 1:  # where DeepCache runs no step, its start changes no pixel
        off.add("deep_cache_from")
    return pixels.model_dump(exclude=off | set(_WHERE_THEY_ACT))


def _normal_blend(a: str, b: str, local_t: float) -> Blend:
    """A blend in normal form: one prompt at the ends or when both are the same."""
    if local_t <= 0.0 or a == b:
        return (a, a, 0.0)
    if local_t >= 1.0:
        return (b, b, 0.0)
    return (a, b, round(local_t, 12))


def _moce_blends(pixels: PixelSettings, plan: FramePlan) -> tuple[Blend, Blend, int] | None:
    """(early blend, blend, N) of a MoCE frame whose early steps differ from the rest; None otherwise."""
    if plan.early_a is None and plan.early_b is None:
        return None
    early = _normal_blend(
        plan.prompt_a if plan.early_a is None else plan.early_a,
        plan.prompt_b if plan.early_b is None else plan.early_b,
        plan.local_t,
    )
    late = _normal_blend(plan.prompt_a, plan.prompt_b, plan.local_t)
    switch = plan.switch_step or 0
    if switch <= 0 or early == late:
        return None
    return early, late, switch


def _moce_key(
    pixels: PixelSettings,
    plan: FramePlan,
    model_revision: str,
    shared: tuple[str, str, float] | None,
    early: Blend,
    late: Blend,
    switch: int,
) -> str:
    if switch >= pixels.steps:  # conditioned on the early blend for every step: that blend's plain frame
        plain = replace(plan, prompt_a=early[0], prompt_b=early[1], local_t=early[2])
        return frame_key(
            pixels, replace(plain, early_a=None, early_b=None, switch_step=None), model_revision, shared
        )
    payload = {"v": 2, **_pixel_payload(pixels), "model_revision": model_revision, "blend": late}
    payload["early"] = [switch, early]
    if late[0] == late[1] and early[0] == early[1]:
        payload["text_interpolation"] = "-"
    return _digest(pixels, plan, payload, shared)


def _digest(
    pixels: PixelSettings, plan: FramePlan, payload: dict[str, Any], shared: tuple[str, str, float] | None
) -> str:
    seed_a = pixels.seed if plan.seed_a is None else plan.seed_a
    seed_b = pixels.seed if plan.seed_b is None else plan.seed_b
    if seed_a == seed_b or plan.noise_t <= 0.0:
        payload["seed"] = seed_a
    elif plan.noise_t >= 1.0:
        payload["seed"] = seed_b
    else:
        payload["seed"] = None
        payload["noise"] = [seed_a, seed_b, round(plan.noise_t, 12), plan.noise_path]
    if plan.start_step > 0:
        if shared is None:
            raise ValueError(f"frame {plan.index} is a shared in-between: its key needs its anchors' keys")
        payload["shared"] = [plan.start_step, shared[0], shared[1], round(shared[2], 12)]
    mixing = plan.attention != "none" and plan.ends is not None and mixed_steps(pixels) > 0
    reuse = neighbour_reuse_step(pixels, plan.start_step, mixed_steps(pixels) if mixing else 0)
    if reuse is not None:
        payload["neighbour_reuse"] = reuse  # from this step on, the anchors' (hashed above) deep features
    if mixing and plan.ends is not None:
        end_a, end_b = (frame_key(pixels, end, str(payload["model_revision"])) for end in plan.ends)
        payload["attention"] = [plan.attention, mixed_steps(pixels), end_a, end_b]
    if any(plan.images):
        payload["images"] = [*plan.images, pixels.image_endpoints, IMAGE_METHOD]
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()[:40]


def frame_keys(pixels: PixelSettings, plans: Sequence[FramePlan], model_revision: str = "") -> list[str]:
    """The key of every frame of a plan; in-betweens after their anchors (whose keys they hash)."""
    keys: list[str | None] = [None] * len(plans)
    for i, plan in enumerate(plans):
        if plan.start_step <= 0:
            keys[i] = frame_key(pixels, plan, model_revision)
    for i, plan in enumerate(plans):
        if plan.start_step > 0:
            assert plan.anchor_a is not None and plan.anchor_b is not None
            anchor_a, anchor_b = keys[plan.anchor_a], keys[plan.anchor_b]
            assert anchor_a is not None and anchor_b is not None, "anchors are rendered in full"
            keys[i] = frame_key(
                pixels, plan, model_revision, (anchor_a, anchor_b, shared_weight(plan, plans))
            )
    return [k for k in keys if k is not None]
