"""Segue's denoising loop: the loop of diffusers' StableDiffusionPipeline, with the hooks paths need.

Written out (rather than calling the pipeline) so that a render can
- condition each frame on a different embedding per step (switch at step k: prompt_a for steps [0, k),
  the blend after),
- start part of a batch at step k from given latents and keep latents at chosen steps (trajectory
  sharing),
- evaluate the unconditional branch of the first step once when every frame starts from the same noise
  latent under the same negative prompt (it is then the same for the whole batch),
- save U-Net work: guidance only on the first part of the steps (`guidance_until`), deep features reused
  across steps (`deep_cache_interval`, engine/deepcache.py) and, for shared in-betweens, from their two
  anchors at the same step (a group's `reuse`, engine/neighbours.py: a second, shallow call per step),
- draw a stochastic scheduler's per-step noise (LCM, Euler ancestral) from the render's seed, the same for
  every frame, so a frame does not depend on the batch it was rendered in,
- mix a frame's attention with the keys and values of two other frames of the call over the first steps
  (attention interpolation, engine/attention.py); the unconditional half stays plain.
With none of those in use it computes exactly what the pipeline computes: latents scaled by the
scheduler's init_noise_sigma, classifier-free guidance when guidance_scale > 1, scheduler.step with the
pipeline's extra arguments (eta = 0), VAE decode and the pipeline's image post-processing.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import PIL.Image
import torch

from engine import attention
from engine.deepcache import DeepFeatures, full_forward, shallow_forward
from engine.neighbours import Features, Reuse, split_rows


@dataclass
class LoopStats:
    """What a loop cost: U-Net calls and the batch items they evaluated (2 per frame-step with guidance)."""

    unet_calls: int = 0
    unet_items: int = 0
    steps: list[int] = field(default_factory=list)
    #: Of unet_calls, those that ran only the shallow path (DeepCache, neighbour reuse), and their items:
    #: these cost a fraction of a full item.
    shallow_calls: int = 0
    shallow_items: int = 0


def step_kwargs(scheduler: Any) -> dict[str, Any]:
    """The extra arguments the pipeline gives scheduler.step (eta = 0 for DDIM; no generator)."""
    accepted = set(inspect.signature(scheduler.step).parameters)
    kwargs: dict[str, Any] = {}
    if "eta" in accepted:
        kwargs["eta"] = 0.0
    if "generator" in accepted:
        kwargs["generator"] = None
    return kwargs


def step_noise(seed: int, step: int, rows: int) -> list[torch.Generator]:
    """One CPU generator per row, all seeded alike: every frame gets the same noise at a step."""
    return [torch.Generator("cpu").manual_seed(seed * 1000 + step + 1) for _ in range(rows)]


def cached_from(deep_cache_from: float, steps: int) -> int:
    """The first step DeepCache may run on the shallow path: the share deep_cache_from of the steps."""
    return min(steps, max(0, math.ceil(deep_cache_from * steps - 1e-9)))


def guided_steps(guidance_until: float, steps: int) -> int:
    """How many of the first steps evaluate the unconditional branch (all of them at 1.0)."""
    return min(steps, max(0, math.ceil(guidance_until * steps - 1e-9)))


@dataclass(frozen=True)
class FrameMix:
    """A frame's attention interpolation: mode, t, and its ends as (group index, frame index in group)."""

    mode: str
    t: float
    end_a: tuple[int, int]
    end_b: tuple[int, int]


@dataclass
class Group:
    """Frames denoised together over steps [start, stop) by one scheduler (its multistep history is theirs).

    `latents`: the starting latents, or None and `init` gives them when step `start` is reached (a shared
    in-between waits for its anchors' latents after `start` steps, captured by another group then).
    cond_for_step(i) is the (B, 77, d) conditioning of step i; `negative` is (B, 77, d). The latents
    after each step count in `capture` go to on_capture(step, latents) as soon as they exist.
    `mixes` (one per frame, None: plain): the frames' attention interpolation over the first mix steps.
    """

    cond_for_step: Callable[[int], torch.Tensor]
    negative: torch.Tensor
    scheduler: Any
    start: int
    stop: int
    latents: torch.Tensor | None = None
    init: Callable[[], torch.Tensor] | None = None
    capture: Collection[int] = ()
    on_capture: Callable[[int, torch.Tensor], None] | None = None
    share_first_uncond: bool = False
    on_step: Callable[[int, int, torch.Tensor], None] | None = None
    mixes: Sequence[FrameMix | None] = ()
    #: Neighbour reuse (engine/neighbours.py): this group's in-betweens run the shallow path from reuse.step.
    reuse: Reuse | None = None
    #: Steps >= features_from hand each frame's deep features to on_features(step, per-frame features).
    features_from: int | None = None
    on_features: Callable[[int, list[Features]], None] | None = None


def denoise_groups(
    unet: Any,
    groups: list[Group],
    *,
    guidance_scale: float,
    steps: int,
    stats: LoopStats | None = None,
    after_step: Callable[[int, int], None] | None = None,
    guidance_until: float = 1.0,
    deep_cache_interval: int = 1,
    deep_cache_from: int = 0,
    noise_seed: int | None = None,
    mix_steps: int = 0,
) -> list[torch.Tensor]:
    """Denoise several groups in one loop: one U-Net call per step over every active group's frames.

    Each group keeps its own scheduler, so frames may join at a later step (trajectory sharing) without
    disturbing the multistep history of the others. after_step(i, steps) runs once each step has been
    taken by every active group (it may raise to stop). Returns each group's latents after its `stop`.
    guidance_until: the unconditional branch runs on the first guided_steps() steps only (then the
    prediction is the conditional one). deep_cache_interval N > 1: a full U-Net every N steps, the shallow
    path between, reusing the last full step's deep features (a change of batch layout forces a full
    step); deep_cache_from: the steps before this one all run the full U-Net (and refresh the deep
    features), DeepCache's interval counts from the last of them. A group with `reuse` runs the shallow
    path from reuse.step, in its own call after the full one,
    fed with its anchors' features (handed out by the groups with on_features in that full call).
    noise_seed: the seed of a stochastic scheduler's per-step noise (step_noise).
    Steps [0, mix_steps) apply the groups' `mixes` (the caller installed engine.attention.mixing).
    """
    for group in groups:
        if not 0 <= group.start <= group.stop <= steps:
            raise ValueError(f"need 0 <= start <= stop <= steps, got {group.start}, {group.stop}, {steps}")
        group.scheduler.set_timesteps(steps, device=unet.device)
    timesteps = groups[0].scheduler.timesteps
    cfg = guidance_scale > 1.0 and getattr(unet.config, "time_cond_proj_dim", None) is None
    cfg_steps = guided_steps(guidance_until, steps) if cfg else 0
    deep: DeepFeatures | None = None
    current: list[torch.Tensor | None] = [None] * len(groups)

    def begin(index: int) -> None:
        group = groups[index]
        latents = group.latents if group.latents is not None else group.init() if group.init else None
        if latents is None:
            raise ValueError("a group needs latents or init")
        current[index] = latents * group.scheduler.init_noise_sigma if group.start == 0 else latents

    first, last = min(g.start for g in groups), max(g.stop for g in groups)
    for i in range(first, last + 1):
        for index, group in enumerate(groups):
            if group.start == i:
                begin(index)
            latents = current[index]
            capturing = group.on_capture is not None and i in group.capture and group.start <= i <= group.stop
            if latents is not None and capturing:
                group.on_capture(i, latents.clone())  # type: ignore[misc]
        if i == last:
            break
        active = [index for index, g in enumerate(groups) if g.start <= i < g.stop]
        if not active:
            continue
        t = timesteps[i]
        guided = i < cfg_steps
        reusing = [index for index in active if _reuses(groups[index], i)]
        main = [index for index in active if index not in reusing]
        parts: dict[int, torch.Tensor] = {}
        if main:
            sample, states, rows, cond_rows = _call_inputs(groups, main, current, i, t, guided)
            mix = _mix_of(groups, main, cond_rows, sum(rows), unet.device) if i < mix_steps else None
            keep = any(_keeps_features(groups[index], i) for index in main)
            features = None
            with attention.use(mix):
                if deep_cache_interval <= 1:
                    if keep:
                        out, features = full_forward(unet, sample, t, states)
                    else:
                        out = unet(sample, t, encoder_hidden_states=states, return_dict=False)[0]
                else:
                    layout = (tuple(main), tuple(rows))
                    if (
                        deep is not None
                        and deep.layout == layout
                        and deep_cache_from <= i < deep.step + deep_cache_interval
                    ):
                        out = shallow_forward(unet, sample, t, states, deep.features)
                        if stats is not None:
                            stats.shallow_calls += 1
                            stats.shallow_items += sum(rows)
                    else:
                        out, fresh = full_forward(unet, sample, t, states)
                        deep = DeepFeatures(i, layout, fresh)
                    features = deep.features
            parts.update(zip(main, out.split(rows), strict=True))
            if stats is not None:
                stats.unet_calls += 1
                stats.unet_items += sum(rows)
            if keep:
                assert features is not None
                _hand_features(groups, main, features.split(rows), current, i, guided)
        if reusing:
            # Neighbour reuse: the shallow path only, fed with the blend of each frame's anchors' features.
            sample, states, rows, _ = _call_inputs(groups, reusing, current, i, t, guided)
            deep_rows = torch.cat([groups[index].reuse.deep(i, guided) for index in reusing])  # type: ignore[union-attr]
            out = shallow_forward(unet, sample, t, states, deep_rows.to(sample.dtype))
            parts.update(zip(reusing, out.split(rows), strict=True))
            if stats is not None:
                stats.unet_calls += 1
                stats.shallow_calls += 1
                stats.shallow_items += sum(rows)
                stats.unet_items += sum(rows)
        if stats is not None:
            stats.steps.append(i)
        for index in active:
            part = parts[index]
            group, latents = groups[index], current[index]
            assert latents is not None
            batch = latents.shape[0]
            if guided:
                uncond, text = part[: part.shape[0] - batch], part[part.shape[0] - batch :]
                if uncond.shape[0] != batch:
                    uncond = uncond.expand(batch, *uncond.shape[1:])
                noise_pred = uncond + guidance_scale * (text - uncond)
            else:
                noise_pred = part
            kwargs = step_kwargs(group.scheduler)
            if noise_seed is not None and "generator" in kwargs:
                kwargs["generator"] = step_noise(noise_seed, i, batch)
            latents = group.scheduler.step(noise_pred, t, latents, **kwargs, return_dict=False)[0]
            current[index] = latents
            if group.on_step is not None:
                group.on_step(i, steps, latents)
        if after_step is not None:
            after_step(i, steps)
    results = []
    for latents in current:
        assert latents is not None
        results.append(latents)
    return results


def _reuses(group: Group, step: int) -> bool:
    return group.reuse is not None and step >= group.reuse.step


def _keeps_features(group: Group, step: int) -> bool:
    return group.on_features is not None and group.features_from is not None and step >= group.features_from


def _call_inputs(
    groups: list[Group], indices: list[int], current: list[torch.Tensor | None], i: int, t: Any, guided: bool
) -> tuple[torch.Tensor, torch.Tensor, list[int], dict[int, int]]:
    """One U-Net call's sample and text states over `indices`' groups, each group's rows, and the first
    row of each group's conditional half."""
    inputs, hidden = [], []
    rows: list[int] = []
    cond_rows: dict[int, int] = {}
    for index in indices:
        group, latents = groups[index], current[index]
        assert latents is not None
        batch = latents.shape[0]
        cond = group.cond_for_step(i)
        if guided:
            one_uncond = _one_uncond(group, i, batch)
            model_in = torch.cat([latents[:1] if one_uncond else latents, latents])
            hid = torch.cat([group.negative[:1] if one_uncond else group.negative, cond])
        else:
            model_in, hid = latents, cond
        inputs.append(group.scheduler.scale_model_input(model_in, t))
        hidden.append(hid)
        cond_rows[index] = sum(rows) + model_in.shape[0] - batch
        rows.append(model_in.shape[0])
    return torch.cat(inputs), torch.cat(hidden), rows, cond_rows


def _one_uncond(group: Group, i: int, batch: int) -> bool:
    """The first step's unconditional branch evaluated once for the group (same noise, same negative)."""
    return i == 0 and group.share_first_uncond and batch > 1


def _hand_features(
    groups: list[Group],
    indices: list[int],
    features: Sequence[torch.Tensor],
    current: list[torch.Tensor | None],
    i: int,
    guided: bool,
) -> None:
    for index, part in zip(indices, features, strict=True):
        group, latents = groups[index], current[index]
        if _keeps_features(group, i) and group.on_features is not None and latents is not None:
            batch = latents.shape[0]
            group.on_features(i, split_rows(part, batch, guided, _one_uncond(group, i, batch)))


def _mix_of(
    groups: list[Group], active: list[int], cond_rows: dict[int, int], batch: int, device: Any
) -> attention.Mix | None:
    """The rows one U-Net call mixes: each mixing frame's conditional row with its ends' rows."""
    rows = []
    for index in active:
        for j, mix in enumerate(groups[index].mixes):
            if mix is None:
                continue
            (ga, ja), (gb, jb) = mix.end_a, mix.end_b
            if ga not in cond_rows or gb not in cond_rows:
                raise RuntimeError("attention interpolation: a frame's ends are not in this U-Net call")
            rows.append((cond_rows[index] + j, mix.mode, cond_rows[ga] + ja, cond_rows[gb] + jb, mix.t))
    return attention.Mix.of(batch, rows, device) if rows else None


def denoise(
    unet: Any,
    scheduler: Any,
    latents: torch.Tensor,
    cond_for_step: Callable[[int], torch.Tensor],
    negative: torch.Tensor,
    *,
    guidance_scale: float,
    steps: int,
    start: int = 0,
    stop: int | None = None,
    capture: Collection[int] = (),
    share_first_uncond: bool = False,
    on_step: Callable[[int, int, torch.Tensor], None] | None = None,
    stats: LoopStats | None = None,
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """One group: denoise `latents` (B, C, h, w) over steps [start, stop) of a `steps`-step schedule.

    start = 0: `latents` is the starting noise (scaled here by init_noise_sigma, as the pipeline does);
    start = k > 0: `latents` are latents after k steps (as captured). Returns the latents after `stop`
    steps and those captured after each step count in `capture`.
    """
    captured: dict[int, torch.Tensor] = {}
    group = Group(
        cond_for_step,
        negative,
        scheduler,
        start,
        steps if stop is None else stop,
        latents=latents,
        capture=capture,
        on_capture=captured.__setitem__,
        share_first_uncond=share_first_uncond,
        on_step=on_step,
    )
    (result,) = denoise_groups(unet, [group], guidance_scale=guidance_scale, steps=steps, stats=stats)
    return result, captured


def decode(pipe: Any, latents: torch.Tensor) -> list[PIL.Image.Image]:
    """Latents -> PIL images, as StableDiffusionPipeline does (no safety checker)."""
    image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    return list(
        pipe.image_processor.postprocess(image, output_type="pil", do_denormalize=[True] * image.shape[0])
    )
