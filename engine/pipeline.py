"""The render engine: a Stable Diffusion pipeline that renders frames between two text prompts.

Each frame's text embedding is interpolate(E(prompt_a), E(prompt_b), local_t). Every frame of a render
starts from the same noise latent, drawn on the CPU from the seed, so a frame depends only on its own
inputs: rendering it alone or inside a batch of any size gives the same picture (within float noise).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import PIL.Image
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
)

# The concrete module, not the package's lazy re-export, so type checkers see the real class.
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline
from pydantic import ValidationError

from core.params import (
    RANGES,
    SCHEDULER_LABELS,
    PixelSettings,
    error_message,
    field_of,
    neighbour_reuse_step,
)
from core.registry import BUILTIN_MODELS, MINI_MODEL, TINY_MODEL, active_lora, model_location
from core.timeline import FrameInputs, mixed_steps
from engine import attention
from engine.attention import MODES as ATTENTION_MODES
from engine.interpolation import interpolate, slerp
from engine.morph import Inverter
from engine.neighbours import Donors, Features, FeatureStore, Reuse
from engine.noise import PATHS as NOISE_PATHS
from engine.noise import noise_between
from engine.sampling import FrameMix, Group, LoopStats, cached_from, decode, denoise_groups
from engine.tiny_model import ensure_tiny_model

logger = logging.getLogger(__name__)

SCHEDULERS = {
    "dpmsolver": DPMSolverMultistepScheduler,
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "lcm": LCMScheduler,
}
#: Schedulers that add fresh noise at each step: it is drawn from the render's seed (sampling.step_noise).
STOCHASTIC_SCHEDULERS = frozenset({"euler_a", "lcm"})
#: LCM picks its timesteps among the 50 its models were distilled on; more steps widen that grid.
LCM_ORIGINAL_STEPS = 50
assert set(SCHEDULERS) == set(SCHEDULER_LABELS), "core.params names the schedulers the engine offers"
# from_config keeps only the keys a scheduler knows; DDIM's own defaults (clip x0 to [-1, 1], alpha=1 at
# the end) are wrong for SD latents, so pin SD's values whatever scheduler the model shipped with.
SCHEDULER_OVERRIDES: dict[str, dict[str, Any]] = {"ddim": {"clip_sample": False, "set_alpha_to_one": False}}

ENCODE_CACHE_SIZE = 256
#: Latents kept for trajectory sharing: (settings, anchor frame, step) -> latents after that many steps.
LATENT_CACHE_SIZE = 512

DEFAULT_MODELS_DIR = Path("data") / "models"  # same default as the app's SEGUE_MODELS_DIR

# SD 1.x latent → RGB linear projection (rows: latent channels; columns: R, G, B), as in ComfyUI's
# latent previews. A good-enough picture of where a render is going, for the cost of a matmul. A model
# may ship its own fitted projection as PREVIEW_FACTORS_FILE next to its model_index.json.
PREVIEW_FACTORS_FILE = "latent_rgb.json"
SD_LATENT_RGB_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)


@dataclass(frozen=True)
class FrameRequest(FrameInputs):
    """One frame to render (core.timeline.FrameInputs): its text embedding is interpolate(E(prompt_a),
    E(prompt_b), local_t), its noise engine.noise.noise_between(seed_a, seed_b, noise_t, noise_path).

    `start` makes it a shared in-between (trajectory sharing). `ends` None under attention interpolation:
    the frames of prompt_a on seed_a's noise and prompt_b on seed_b's.
    """

    start: SharedStart | None = None

    @property
    def early(self) -> tuple[str, str] | None:
        """The prompts of steps [0, switch_step) under MoCE; None: prompt_a alone (the plain switch)."""
        if self.early_a is None and self.early_b is None:
            return None
        return (
            self.prompt_a if self.early_a is None else self.early_a,
            self.prompt_b if self.early_b is None else self.early_b,
        )

    def mix_ends(self) -> tuple[FrameRequest, FrameRequest]:
        """The frames whose keys and values this frame mixes (attention interpolation)."""
        if self.ends is not None:
            return self.ends
        return (
            FrameRequest(self.prompt_a, self.prompt_a, 0.0, seed_a=self.seed_a, seed_b=self.seed_a),
            FrameRequest(self.prompt_b, self.prompt_b, 0.0, seed_a=self.seed_b, seed_b=self.seed_b),
        )


@dataclass(frozen=True)
class SharedStart:
    """Start at `step` from slerp(latents of anchor_a after `step` steps, those of anchor_b, weight)."""

    anchor_a: FrameRequest
    anchor_b: FrameRequest
    weight: float
    step: int


class RenderCancelled(Exception):
    """should_cancel() returned True; the render stopped between two denoising steps."""


def check_inputs(params: PixelSettings, frames: Sequence[FrameRequest]) -> None:
    """Fail fast, before any model work, with a message that names the argument and its allowed range.

    The settings are checked against core.params' hard limits, the same table the API and the form use.
    """
    try:
        PixelSettings.model_validate(params.model_dump())
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(error_message(dict(first), field_of(first["loc"]))) from None
    if len(frames) == 0:
        raise ValueError("frames must hold at least one FrameRequest, got none")
    for index, frame in enumerate(frames):
        for name in ("prompt_a", "prompt_b"):
            if not isinstance(getattr(frame, name), str):
                raise ValueError(f"frames[{index}].{name} must be a string, got {getattr(frame, name)!r}")
        for name in ("early_a", "early_b"):
            value = getattr(frame, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"frames[{index}].{name} must be a string or None, got {value!r}")
        for name in ("local_t", "noise_t"):
            t = getattr(frame, name)
            if not (isinstance(t, int | float) and math.isfinite(t) and 0.0 <= t <= 1.0):
                raise ValueError(f"frames[{index}].{name} must be a number in [0, 1], got {t!r}")
        for name in ("seed_a", "seed_b"):
            seed = getattr(frame, name)
            if seed is not None:
                try:
                    RANGES["seed"].check(f"frames[{index}].{name}", seed)
                except ValueError as exc:
                    raise ValueError(str(exc)) from None
        if frame.noise_path not in NOISE_PATHS:
            allowed = ", ".join(NOISE_PATHS)
            raise ValueError(f"frames[{index}].noise_path must be one of {allowed}, got {frame.noise_path!r}")
        if frame.switch_step is not None and not (
            isinstance(frame.switch_step, int) and frame.switch_step >= 0
        ):
            raise ValueError(
                f"frames[{index}].switch_step must be a whole number >= 0, got {frame.switch_step!r}"
            )
        if frame.attention not in ATTENTION_MODES:
            allowed = ", ".join(ATTENTION_MODES)
            raise ValueError(f"frames[{index}].attention must be one of {allowed}, got {frame.attention!r}")
        if frame.ends is not None:
            for end in frame.ends:
                if end.attention != "none" or end.start is not None:
                    raise ValueError(
                        f"frames[{index}].ends: a keyframe's frame is rendered plainly and in full"
                    )
                check_inputs(params, [end])
        if frame.start is not None:
            start = frame.start
            if not (isinstance(start.step, int) and 1 <= start.step < params.steps):
                raise ValueError(
                    f"frames[{index}].start.step must be between 1 and {params.steps - 1} (steps - 1), "
                    f"got {start.step!r}"
                )
            if not (math.isfinite(start.weight) and 0.0 <= start.weight <= 1.0):
                raise ValueError(f"frames[{index}].start.weight must be in [0, 1], got {start.weight!r}")
            for anchor in (start.anchor_a, start.anchor_b):
                if anchor.start is not None:
                    raise ValueError(f"frames[{index}].start: an anchor must be rendered in full")
                check_inputs(params, [anchor])


class DeviceUnavailable(RuntimeError):
    """The configured device does not exist on this machine (one line a person can act on)."""


def resolve_device(device: str | None) -> torch.device:
    """ "auto" (or None): CUDA when there is a GPU, else the CPU; "cpu", "cuda", "cuda:1", "mps" as given.

    Asking for a device this machine does not have raises DeviceUnavailable naming the setting.
    """
    if device is None or device.strip() in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(device.strip())
    except RuntimeError:
        raise DeviceUnavailable(
            f"SEGUE_DEVICE={device!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if target.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise DeviceUnavailable(
                f"SEGUE_DEVICE={device} but this machine has no usable CUDA device "
                f"(torch {torch.__version__}, {build}); "
                "set SEGUE_DEVICE=cpu or auto, or install a CUDA build of torch"
            )
        if target.index is not None and target.index >= torch.cuda.device_count():
            raise DeviceUnavailable(
                f"SEGUE_DEVICE={device} but only {torch.cuda.device_count()} CUDA device(s) are visible "
                f"(CUDA_VISIBLE_DEVICES); use cuda:0 .. cuda:{torch.cuda.device_count() - 1}"
            )
    elif target.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailable(f"SEGUE_DEVICE={device} but this machine has no MPS device; use cpu or auto")
    return target


def dtype_for(device: torch.device) -> torch.dtype:
    """Half precision on a GPU (half the memory, tensor cores); float32 on CPUs, which lack fast fp16."""
    return torch.float16 if device.type == "cuda" else torch.float32


def uses_sdpa(unet: Any) -> bool:
    """Every attention layer runs torch's scaled_dot_product_attention (flash / memory-efficient on CUDA)."""
    return all(type(p).__name__ == "AttnProcessor2_0" for p in unet.attn_processors.values())


def resolve_model(model: str, models_dir: Path) -> str:
    """Map a model name to what `from_pretrained` takes: a local directory or a hub id.

    "segue-tiny" is built into models_dir on first use; "segue-mini" is the directory shipped in
    models; anything else (a hub id or a local directory) is returned unchanged.
    """
    location = model_location(model, models_dir)
    if model == TINY_MODEL:
        return str(ensure_tiny_model(Path(location)))
    if model == MINI_MODEL:
        shipped = Path(location)
        if not (shipped / "model_index.json").is_file():
            raise FileNotFoundError(
                f"model {MINI_MODEL!r} is not in {shipped} (no model_index.json); it ships with trained "
                f"weights once they exist — use {TINY_MODEL!r} or a hub id such as "
                "'runwayml/stable-diffusion-v1-5' until then"
            )
        return str(shipped)
    return location


@dataclass(frozen=True)
class PreviewProjection:
    """latent (B, C, h, w) -> RGB in [-1, 1]: rgb = latent · factors + bias, per pixel."""

    factors: tuple[tuple[float, ...], ...] = SD_LATENT_RGB_FACTORS
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def for_model(cls, folder: Path | None) -> PreviewProjection:
        """The model's own fitted projection when it ships one, else Stable Diffusion 1.x's."""
        path = folder / PREVIEW_FACTORS_FILE if folder is not None else None
        if path is None or not path.is_file():
            return cls()
        data = json.loads(path.read_text())
        return cls(tuple(tuple(row) for row in data["factors"]), tuple(data["bias"]))  # type: ignore[arg-type]


def latents_to_preview(
    latents: torch.Tensor, size: int = 64, projection: PreviewProjection | None = None
) -> list[PIL.Image.Image]:
    """Cheap RGB previews of latents (B, C, h, w) via a linear projection, no VAE.

    Each image is scaled so its longer side is `size` pixels, keeping the aspect ratio.
    """
    projection = projection or PreviewProjection()
    if latents.ndim != 4 or latents.shape[1] != len(projection.factors):
        raise ValueError(
            f"latents must have shape (batch, {len(projection.factors)}, height, width), "
            f"got {tuple(latents.shape)}"
        )
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    factors = torch.tensor(projection.factors, dtype=torch.float32)
    bias = torch.tensor(projection.bias, dtype=torch.float32)
    rgb = torch.einsum("bchw,cr->bhwr", latents.detach().to("cpu", torch.float32), factors) + bias
    pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8).numpy()
    height, width = latents.shape[2:]
    scale = size / max(height, width)
    preview_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return [PIL.Image.fromarray(p).resize(preview_size, PIL.Image.Resampling.BILINEAR) for p in pixels]


@dataclass
class _Batch:
    """One render() call's plan: its distinct frames and where each goes, filled in step by step."""

    params: PixelSettings
    unique: list[FrameRequest]  # each distinct request once, in first-seen order
    slot: dict[FrameRequest, int]  # request -> its row among `unique`
    order: list[int]  # per requested frame, its row among `unique`
    full: list[FrameRequest]  # frames denoised from step 0 (not shared in-betweens)
    anchors: list[FrameRequest]  # the anchors of the batch's shared in-betweens
    mix_steps: int
    mixing: list[FrameRequest]  # frames (and anchors) that mix attention with their ends
    ends: list[FrameRequest]  # the ends those frames mix with
    shape: tuple[int, int, int, int]  # one frame's latent shape
    settings_key: str  # the settings part of the latent cache's key
    embeddings: dict[str, torch.Tensor] = field(default_factory=dict)
    display: torch.Tensor | None = None  # the latest latents of every distinct frame, for on_step
    features: dict[tuple[FrameRequest, int], Features] = field(default_factory=dict)  # neighbour reuse

    @property
    def prompted(self) -> list[FrameRequest]:
        """Every request whose prompts the loop conditions on."""
        return [*self.unique, *self.anchors, *self.ends]


@dataclass(frozen=True)
class _Conditioning:
    """cond(step) of a group: each frame's interpolated embedding; before its switch step prompt_a alone,
    or (MoCE) the early prompts' blend at the same local t."""

    plain: torch.Tensor
    firsts: list[torch.Tensor]
    blends: list[torch.Tensor]
    switches: list[int]

    @classmethod
    def of(cls, batch: _Batch, frames: Sequence[FrameRequest]) -> _Conditioning:
        embeddings, how = batch.embeddings, batch.params.text_interpolation
        blends = [interpolate(embeddings[f.prompt_a], embeddings[f.prompt_b], f.local_t, how) for f in frames]
        firsts = [
            embeddings[f.prompt_a]
            if f.early is None
            else interpolate(embeddings[f.early[0]], embeddings[f.early[1]], f.local_t, how)
            for f in frames
        ]
        return cls(torch.cat(blends), firsts, blends, [f.switch_step or 0 for f in frames])

    def __call__(self, step: int) -> torch.Tensor:
        if all(step >= k for k in self.switches):
            return self.plain
        return torch.cat(
            [a if step < k else b for a, b, k in zip(self.firsts, self.blends, self.switches, strict=True)]
        )


def _show(batch: _Batch, rows: list[int], step: int, total: int, current: torch.Tensor) -> None:
    """A shown group's latents after a step go to their rows of the batch's display."""
    assert batch.display is not None
    batch.display[rows] = current


def _after_step(
    batch: _Batch,
    on_step: Callable[[int, int, torch.Tensor], None] | None,
    should_cancel: Callable[[], bool] | None,
    step: int,
    total: int,
) -> None:
    """After each denoising step: the caller's on_step (the batch's latents in request order), then cancel."""
    if on_step is not None:
        assert batch.display is not None
        on_step(step, total, batch.display[batch.order])
    if should_cancel is not None and should_cancel():
        raise RenderCancelled(f"cancelled after step {step + 1} of {total}")


class Engine:
    """One loaded pipeline plus a prompt-embedding cache; safe to share between threads."""

    def __init__(
        self,
        pipe: StableDiffusionPipeline,
        model_name: str,
        device: torch.device,
        dtype: torch.dtype,
        preview: PreviewProjection | None = None,
        folder: Path | None = None,
    ):
        self.pipe = pipe
        self.folder = folder  # the model's local directory (None for a hub id): its side files live there
        self.preview_projection = preview or PreviewProjection()
        self.model_name = model_name
        self.device = device
        self.dtype = dtype
        self._embeddings: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._embeddings_lock = threading.Lock()
        self._latents: OrderedDict[tuple[str, FrameRequest, int], torch.Tensor] = OrderedDict()
        self._latents_lock = threading.Lock()
        #: Anchors' deep features kept for later batches' in-betweens (neighbour reuse).
        self.features = FeatureStore()
        #: What the last render() cost (U-Net calls and items), for benchmarks and tests.
        self.last_stats = LoopStats()
        #: One unconditional evaluation at the first step when every frame starts from the same noise.
        self.share_first_uncond = True
        #: The LoRA file fused into the weights at load (SEGUE_LORA), if any.
        self.lora: Path | None = None
        self._inverter: Inverter | None = None

    @classmethod
    def load(
        cls, model: str, device: str | None = None, models_dir: Path | None = None, lora: Path | None = None
    ) -> Engine:
        """Load `model` on `device` (auto: CUDA if any); `lora`: a LoRA file fused into the weights."""
        target = resolve_device(device)
        dtype = dtype_for(target)
        path_or_id = resolve_model(model, models_dir if models_dir is not None else DEFAULT_MODELS_DIR)
        with warnings.catch_warnings():
            # `torch_dtype` is the name every diffusers release we support (0.30-0.49) accepts; the newest
            # ones prefer `dtype` and warn on each load. The warning tells a user nothing they can act on.
            warnings.filterwarnings("ignore", message="`torch_dtype` is deprecated", category=FutureWarning)
            pipe = StableDiffusionPipeline.from_pretrained(
                path_or_id, torch_dtype=dtype, safety_checker=None, requires_safety_checker=False
            )
        if lora is not None:
            fuse_lora(pipe, lora)
        # diffusers already uses torch 2's scaled_dot_product_attention (AttnProcessor2_0) by default.
        pipe = pipe.to(target)
        pipe.set_progress_bar_config(disable=True)
        logger.info(
            "loaded %s from %s on %s (%s, %s attention%s)",
            model,
            path_or_id,
            target,
            dtype,
            "SDPA" if uses_sdpa(pipe.unet) else "custom",
            f", LoRA {lora.name} fused" if lora is not None else "",
        )
        folder = Path(path_or_id) if Path(path_or_id).is_dir() else None
        engine = cls(
            pipe,
            model_name=model,
            device=target,
            dtype=dtype,
            preview=PreviewProjection.for_model(folder),
            folder=folder,
        )
        engine.lora = lora
        return engine

    @property
    def inverter(self) -> Inverter:
        """DDIM inversion and image morphs on this engine (engine/morph.py), with their cache."""
        with self._embeddings_lock:
            if self._inverter is None:
                self._inverter = Inverter(self)
            return self._inverter

    def preview(self, latents: torch.Tensor, size: int = 64) -> list[PIL.Image.Image]:
        """Per-step previews of a batch's latents, with this model's projection."""
        return latents_to_preview(latents, size=size, projection=self.preview_projection)

    def encode(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Text embeddings (1, 77, hidden) per distinct prompt; each prompt is encoded once per process.

        The returned tensors are shared with the cache: treat them as read-only.
        """
        embeddings: dict[str, torch.Tensor] = {}
        for prompt in dict.fromkeys(prompts):
            with self._embeddings_lock:
                cached = self._embeddings.get(prompt)
                if cached is not None:
                    self._embeddings.move_to_end(prompt)
            if cached is None:
                cached = self._encode_one(prompt)
                with self._embeddings_lock:
                    self._embeddings[prompt] = cached
                    while len(self._embeddings) > ENCODE_CACHE_SIZE:
                        self._embeddings.popitem(last=False)
            embeddings[prompt] = cached
        return embeddings

    def _encode_one(self, prompt: str) -> torch.Tensor:
        # One prompt per forward pass: its embedding must not depend on which prompts shared a batch.
        tokenizer, text_encoder = self.pipe.tokenizer, self.pipe.text_encoder
        max_length = tokenizer.model_max_length
        n_tokens = len(tokenizer(prompt).input_ids)
        if n_tokens > max_length:
            logger.warning(
                "prompt is %d tokens; the model reads %d — the rest is ignored: %.60r",
                n_tokens,
                max_length,
                prompt,
            )
        tokens = tokenizer(
            prompt, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
        )
        # Same rule as StableDiffusionPipeline.encode_prompt: only some CLIP variants want the mask.
        attention_mask = (
            tokens.attention_mask.to(self.device)
            if getattr(text_encoder.config, "use_attention_mask", False)
            else None
        )
        with torch.inference_mode():
            output = text_encoder(tokens.input_ids.to(self.device), attention_mask=attention_mask)
        return output.last_hidden_state.to(self.dtype)

    def render(
        self,
        params: PixelSettings,
        frames: Sequence[FrameRequest],
        *,
        on_step: Callable[[int, int, torch.Tensor], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        keep_latents_at: Sequence[int] = (),
    ) -> list[PIL.Image.Image]:
        """Render `frames` in one batch and return their images in order.

        on_step(step_index, total_steps, latents) runs after every denoising step (latents of the whole
        batch, in the order of `frames`); should_cancel() is checked before the first and after every
        step and raises RenderCancelled when it returns True. Identical requests are rendered once.
        keep_latents_at: keep each full frame's latents after these step counts (trajectory sharing: a
        later in-between starting there finds its anchors without recomputing them).
        Fewer U-Net evaluations (params; bench/evaluations.py measures what they cost in fidelity; off,
        they compute exactly what Segue always computed): guidance_until < 1 drops the unconditional
        branch after that fraction of the steps; deep_cache_interval N > 1 runs the full U-Net every N
        steps and only its shallow path between (engine/deepcache.py), from the share deep_cache_from of
        the steps on (every step before it runs the full U-Net); neighbour_reuse_from < 1 runs shared
        in-betweens' late steps on the shallow path with their anchors' deep features (engine/neighbours.py).
        """
        # 1. Check inputs
        check_inputs(params, frames)
        if should_cancel is not None and should_cancel():
            raise RenderCancelled("cancelled before the first step")
        self.last_stats = stats = LoopStats()

        # 2. Plan the batch: its distinct frames, the anchors of its in-betweens, the ends attention mixes
        batch = self._plan_batch(params, frames)

        # 3. Encode every distinct prompt once (cached across calls); "" is the unconditional prompt
        batch.embeddings = self.encode(
            [
                params.negative_prompt,
                *(p for f in batch.prompted for p in (f.prompt_a, f.prompt_b, *(f.early or ()))),
            ]
        )

        with torch.inference_mode():
            # 4. Group the frames by the steps they run: anchors missing from the cache (their first k
            # steps), full frames, in-betweens joining at step k, and the ends attention mixes
            groups, members, in_group, helpers = self._groups(batch, keep_latents_at)
            if batch.mixing:
                self._assign_mixes(groups, in_group, batch.full, helpers)

            # 5. Denoise: one loop, every group's frames share each U-Net call
            with attention.mixing(self.pipe.unet) if batch.mixing else contextlib.nullcontext():
                finals = denoise_groups(
                    self.pipe.unet,
                    groups,
                    guidance_scale=params.guidance_scale,
                    steps=params.steps,
                    stats=stats,
                    after_step=functools.partial(_after_step, batch, on_step, should_cancel),
                    mix_steps=batch.mix_steps if batch.mixing else 0,
                    noise_seed=params.seed if params.scheduler in STOCHASTIC_SCHEDULERS else None,
                    guidance_until=params.guidance_until,
                    deep_cache_interval=params.deep_cache_interval,
                    deep_cache_from=cached_from(params.deep_cache_from, params.steps),
                )
            results: dict[FrameRequest, torch.Tensor] = {}
            for frames_of, latents in zip(members, finals, strict=True):
                if frames_of:
                    results.update(zip(frames_of, latents, strict=True))

            # 6. Decode each distinct frame once, and return the images in the order asked
            images = decode(self.pipe, torch.stack([results[f] for f in batch.unique]))
        return [images[i] for i in batch.order]

    def _plan_batch(self, params: PixelSettings, frames: Sequence[FrameRequest]) -> _Batch:
        unique = list(dict.fromkeys(frames))
        slot = {frame: i for i, frame in enumerate(unique)}
        anchors = [a for f in unique if f.start for a in (f.start.anchor_a, f.start.anchor_b)]
        mix_steps = mixed_steps(params)
        mixing = [f for f in [*unique, *anchors] if f.attention != "none" and mix_steps > 0]
        shape = (
            1,
            self.pipe.unet.config.in_channels,
            params.height // self.pipe.vae_scale_factor,
            params.width // self.pipe.vae_scale_factor,
        )
        return _Batch(
            params=params,
            unique=unique,
            slot=slot,
            order=[slot[f] for f in frames],
            full=[f for f in unique if f.start is None],
            anchors=anchors,
            mix_steps=mix_steps,
            mixing=mixing,
            ends=list(dict.fromkeys(e for f in mixing for e in f.mix_ends())),
            shape=shape,
            settings_key=params.model_dump_json(),
        )

    def _groups(
        self, batch: _Batch, keep_latents_at: Sequence[int]
    ) -> tuple[list[Group], list[list[FrameRequest]], list[list[FrameRequest]], list[FrameRequest]]:
        """The loop's groups; per group the frames whose final latents are wanted ([] for helpers) and the
        frames it runs; and the helpers (the ends attention mixes that are not frames of this batch)."""
        params = batch.params
        batch.display = torch.zeros(
            (len(batch.unique), *batch.shape[1:]), device=self.device, dtype=self.dtype
        )
        full = batch.full
        shared = [f for f in batch.unique if f.start is not None]
        # Step counts at which full frames' latents are wanted: by in-betweens here or later batches.
        wanted = {f.start.step for f in shared if f.start} | {
            k for k in keep_latents_at if 0 < k < params.steps
        }
        by_step: dict[tuple[int, int | None], list[FrameRequest]] = {}
        for f in shared:
            assert f.start is not None
            by_step.setdefault((f.start.step, self._reuse_step(batch, f)), []).append(f)
        groups: list[Group] = []
        members: list[list[FrameRequest]] = []
        in_group: list[list[FrameRequest]] = []
        # Neighbour reuse: full frames keep their deep features from the first step any in-between reuses
        # them; anchors whose features are neither here nor kept run in full beside the batch.
        keep_from = min(
            (r for k in wanted if (r := neighbour_reuse_step(params, k)) is not None), default=None
        )
        donors = self._missing_donors(batch, shared)
        if donors:
            noise = self._noise(batch, donors)
            groups.append(
                self._group(batch, donors, 0, params.steps, sorted(wanted), False, noise, keep_from=keep_from)
            )
            members.append([])
            in_group.append(donors)
        for k, anchors_k in sorted(self._missing_anchors(batch, shared, set(donors)).items()):
            groups.append(
                self._group(batch, anchors_k, 0, k, [k], show=False, latents=self._noise(batch, anchors_k))
            )
            members.append([])  # only their latents after k steps are wanted
            in_group.append(anchors_k)
        if full:
            groups.append(
                self._group(
                    batch,
                    full,
                    0,
                    params.steps,
                    sorted(wanted),
                    show=True,
                    latents=self._noise(batch, full),
                    keep_from=keep_from,
                )
            )
            members.append(full)
            in_group.append(full)
        for (k, reuse), group in sorted(by_step.items(), key=lambda item: (item[0][0], item[0][1] or 0)):
            init = functools.partial(self._shared_starts, batch.settings_key, group, k)
            groups.append(self._group(batch, group, k, params.steps, (), show=True, init=init))
            if reuse is not None:
                groups[-1].reuse = Reuse(reuse, [_donors(f) for f in group], self._lookup(batch))
            members.append(group)
            in_group.append(group)
        # Attention interpolation: the keyframes' frames that are not frames of this batch run beside it
        # for the mixed steps only (their keys and values are all that is wanted of them).
        helpers = [e for e in batch.ends if e not in full]
        if helpers:
            groups.append(
                self._group(
                    batch, helpers, 0, batch.mix_steps, (), show=False, latents=self._noise(batch, helpers)
                )
            )
            members.append([])
            in_group.append(helpers)
        return groups, members, in_group, helpers

    def _missing_anchors(
        self, batch: _Batch, shared: Sequence[FrameRequest], running: set[FrameRequest]
    ) -> dict[int, list[FrameRequest]]:
        """Anchors that are neither cached nor in this batch, by step: they run their first k steps only."""
        missing: dict[int, list[FrameRequest]] = {}
        for f in shared:
            assert f.start is not None
            for anchor in (f.start.anchor_a, f.start.anchor_b):
                if (
                    anchor not in batch.slot
                    and anchor not in running
                    and self._cached_latents(batch.settings_key, anchor, f.start.step) is None
                ):
                    group = missing.setdefault(f.start.step, [])
                    if anchor not in group:
                        group.append(anchor)
        return missing

    def _reuse_step(self, batch: _Batch, frame: FrameRequest) -> int | None:
        """The step a shared in-between starts reusing its anchors' deep features at (None: never)."""
        assert frame.start is not None
        mixing = frame.attention != "none" and batch.mix_steps > 0
        return neighbour_reuse_step(batch.params, frame.start.step, batch.mix_steps if mixing else 0)

    def _missing_donors(self, batch: _Batch, shared: Sequence[FrameRequest]) -> list[FrameRequest]:
        """Anchors an in-between reuses that are not in this batch: their kept features are copied into
        the batch; those with none kept are returned (they run in full beside the batch)."""
        missing: list[FrameRequest] = []
        for f in shared:
            reuse = self._reuse_step(batch, f)
            if reuse is None:
                continue
            assert f.start is not None
            for anchor in (f.start.anchor_a, f.start.anchor_b):
                if anchor in batch.slot or anchor in missing:
                    continue
                steps = range(reuse, batch.params.steps)
                kept = self.features.get_all(batch.settings_key, anchor, steps)
                if kept is None:
                    missing.append(anchor)
                else:
                    batch.features.update({(anchor, step): features for step, features in kept.items()})
        return missing

    def _lookup(self, batch: _Batch) -> Callable[[Any, int], Features]:
        return lambda frame, step: batch.features[(frame, step)]

    def _keep_features(
        self, batch: _Batch, frames: Sequence[FrameRequest], step: int, features: list[Features]
    ) -> None:
        for frame, kept in zip(frames, features, strict=True):
            batch.features[(frame, step)] = kept
            self.features.put(batch.settings_key, frame, step, kept)

    def _group(
        self,
        batch: _Batch,
        frames: Sequence[FrameRequest],
        start: int,
        stop: int,
        capture: Sequence[int],
        show: bool,
        latents: torch.Tensor | None = None,
        init: Callable[[], torch.Tensor] | None = None,
        keep_from: int | None = None,
    ) -> Group:
        """One group of the loop; `show`: its latents appear in the batch's previews (on_step)."""
        rows = [batch.slot[f] for f in frames] if show else []
        return Group(
            _Conditioning.of(batch, frames),
            batch.embeddings[batch.params.negative_prompt].repeat(len(frames), 1, 1),
            self._scheduler(batch.params.scheduler, batch.params.steps),
            start,
            stop,
            latents=latents,
            init=init,
            capture=capture,
            on_capture=functools.partial(self._capture, batch.settings_key, frames),
            share_first_uncond=(
                self.share_first_uncond
                and start == 0
                and latents is not None
                and bool((latents == latents[:1]).all())
            ),
            on_step=functools.partial(_show, batch, rows) if show else None,
            features_from=keep_from,
            on_features=None if keep_from is None else functools.partial(self._keep_features, batch, frames),
        )

    def _noise(self, batch: _Batch, frames: Sequence[FrameRequest]) -> torch.Tensor:
        """Each frame's noise latent, drawn on the CPU so every device gets the same noise."""
        seed = batch.params.seed
        drawn = [
            noise_between(
                seed if f.seed_a is None else f.seed_a,
                seed if f.seed_b is None else f.seed_b,
                f.noise_t,
                f.noise_path,
                batch.shape,
            )
            for f in frames
        ]
        return torch.cat(drawn).to(device=self.device, dtype=self.dtype)

    def _shared_starts(self, settings_key: str, frames: Sequence[FrameRequest], step: int) -> torch.Tensor:
        """In-betweens' starting latents: the slerp of their anchors' latents after `step` steps."""
        starts = []
        for f in frames:
            assert f.start is not None
            left = self._cached_latents(settings_key, f.start.anchor_a, step)
            right = self._cached_latents(settings_key, f.start.anchor_b, step)
            assert left is not None and right is not None, "anchors run first"
            starts.append(slerp(left[None], right[None], f.start.weight))
        return torch.cat(starts)

    def _capture(
        self, settings_key: str, frames: Sequence[FrameRequest], step: int, latents: torch.Tensor
    ) -> None:
        self._keep_latents(settings_key, frames, {step: latents})

    @staticmethod
    def _assign_mixes(
        groups: list[Group],
        in_group: list[list[FrameRequest]],
        full: list[FrameRequest],
        helpers: list[FrameRequest],
    ) -> None:
        """Each mixing frame's FrameMix: its mode, local t and the rows of its ends (in the full group or
        the helpers' group, both running from step 0)."""
        where: dict[FrameRequest, tuple[int, int]] = {}
        for g, frames_ in enumerate(in_group):
            if frames_ is full or frames_ is helpers:
                where.update({f: (g, j) for j, f in enumerate(frames_)})
        for group, frames_ in zip(groups, in_group, strict=True):
            mixes: list[FrameMix | None] = []
            for f in frames_:
                if f.attention == "none":
                    mixes.append(None)
                    continue
                end_a, end_b = f.mix_ends()
                mixes.append(FrameMix(f.attention, f.local_t, where[end_a], where[end_b]))
            group.mixes = mixes

    def _scheduler(self, name: str, steps: int) -> Any:
        # Schedulers keep per-call state (timesteps, step index), so each loop gets its own.
        overrides = dict(SCHEDULER_OVERRIDES.get(name, {}))
        if name == "lcm":
            overrides["original_inference_steps"] = max(LCM_ORIGINAL_STEPS, steps)
        return SCHEDULERS[name].from_config(self.pipe.scheduler.config, **overrides)

    def _keep_latents(
        self, settings_key: str, frames: Sequence[FrameRequest], captured: dict[int, torch.Tensor]
    ) -> None:
        with self._latents_lock:
            for step, latents in captured.items():
                for frame, row in zip(frames, latents, strict=True):
                    self._latents[(settings_key, frame, step)] = row.clone()
                    self._latents.move_to_end((settings_key, frame, step))
            while len(self._latents) > LATENT_CACHE_SIZE:
                self._latents.popitem(last=False)

    def _cached_latents(self, settings_key: str, frame: FrameRequest, step: int) -> torch.Tensor | None:
        with self._latents_lock:
            return self._latents.get((settings_key, frame, step))

    def _pipeline_for_call(self, scheduler: str) -> StableDiffusionPipeline:
        # Schedulers and pipelines keep per-call state (timesteps, step index, guidance scale), so each
        # call gets its own scheduler and a pipeline object around the shared, read-only model weights.
        scheduler_cls = SCHEDULERS[scheduler]
        components = dict(self.pipe.components)
        components["scheduler"] = scheduler_cls.from_config(
            self.pipe.scheduler.config, **SCHEDULER_OVERRIDES.get(scheduler, {})
        )
        pipe = StableDiffusionPipeline(**components, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        return pipe


def _donors(frame: FrameRequest) -> Donors:
    assert frame.start is not None
    return Donors(frame.start.anchor_a, frame.start.anchor_b, frame.start.weight)


def fuse_lora(pipe: StableDiffusionPipeline, path: Path, scale: float = 1.0) -> None:
    """Load a LoRA file (diffusers, kohya or PEFT format, e.g. LCM-LoRA) and fuse it into the weights.

    Fused, it costs nothing per step; the adapter modules are dropped afterwards.
    """
    if not path.is_file():
        raise FileNotFoundError(f"SEGUE_LORA={path} is not a file; give the path of a .safetensors LoRA")
    pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name="segue")
    pipe.fuse_lora(lora_scale=scale)
    pipe.unload_lora_weights()


_engines: dict[tuple[str, str, str], Engine] = {}
_engines_lock = threading.Lock()


def get_engine(model: str, models_dir: Path | None = None, device: str | None = None) -> Engine:
    """The process-wide Engine for `model` on `device`, loaded on first use (thread-safe).

    A model that is not built in gets the LoRA of SEGUE_LORA fused in (core.registry.active_lora).
    """
    lora = None if model in BUILTIN_MODELS else active_lora()
    key = (model, str(resolve_device(device)), str(lora or ""))
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = Engine.load(model, device=device, models_dir=models_dir, lora=lora)
            _engines[key] = engine
        return engine
