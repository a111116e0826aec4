"""The render engine: a Stable Diffusion pipeline that renders frames between two text prompts.

Each frame's text embedding is interpolate(E(prompt_a), E(prompt_b), local_t). Every frame of a render
starts from the same noise latent, drawn on the CPU from the seed, so a frame depends only on its own
inputs: rendering it alone or inside a batch of any size gives the same picture (within float noise).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import PIL.Image
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

# The concrete module, not the package's lazy re-export, so type checkers see the real class.
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline
from pydantic import ValidationError

from core.params import SCHEDULER_LABELS, PixelSettings, error_message, field_of
from core.registry import MINI_MODEL, TINY_MODEL, model_location
from engine.interpolation import interpolate
from engine.tiny_model import ensure_tiny_model

logger = logging.getLogger(__name__)

SCHEDULERS = {
    "dpmsolver": DPMSolverMultistepScheduler,
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
}
assert set(SCHEDULERS) == set(SCHEDULER_LABELS), "core.params names the schedulers the engine offers"
# from_config keeps only the keys a scheduler knows; DDIM's own defaults (clip x0 to [-1, 1], alpha=1 at
# the end) are wrong for SD latents, so pin SD's values whatever scheduler the model shipped with.
SCHEDULER_OVERRIDES: dict[str, dict[str, Any]] = {"ddim": {"clip_sample": False, "set_alpha_to_one": False}}

ENCODE_CACHE_SIZE = 256

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
class FrameRequest:
    """One frame: its text embedding is interpolate(E(prompt_a), E(prompt_b), local_t)."""

    prompt_a: str
    prompt_b: str
    local_t: float


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
        t = frame.local_t
        if not (isinstance(t, int | float) and math.isfinite(t) and 0.0 <= t <= 1.0):
            raise ValueError(f"frames[{index}].local_t must be a number in [0, 1], got {t!r}")


def resolve_device(device: str | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


class Engine:
    """One loaded pipeline plus a prompt-embedding cache; safe to share between threads."""

    def __init__(
        self,
        pipe: StableDiffusionPipeline,
        model_name: str,
        device: torch.device,
        dtype: torch.dtype,
        preview: PreviewProjection | None = None,
    ):
        self.pipe = pipe
        self.preview_projection = preview or PreviewProjection()
        self.model_name = model_name
        self.device = device
        self.dtype = dtype
        self._embeddings: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._embeddings_lock = threading.Lock()

    @classmethod
    def load(cls, model: str, device: str | None = None, models_dir: Path | None = None) -> Engine:
        target = resolve_device(device)
        # Half precision halves memory and doubles speed on a GPU; CPUs have no fast fp16 kernels.
        dtype = torch.float16 if target.type == "cuda" else torch.float32
        path_or_id = resolve_model(model, models_dir if models_dir is not None else DEFAULT_MODELS_DIR)
        with warnings.catch_warnings():
            # `torch_dtype` is the name every diffusers release we support (0.30-0.49) accepts; the newest
            # ones prefer `dtype` and warn on each load. The warning tells a user nothing they can act on.
            warnings.filterwarnings("ignore", message="`torch_dtype` is deprecated", category=FutureWarning)
            pipe = StableDiffusionPipeline.from_pretrained(
                path_or_id, torch_dtype=dtype, safety_checker=None, requires_safety_checker=False
            )
        # diffusers already uses torch 2's scaled_dot_product_attention (AttnProcessor2_0) by default.
        pipe = pipe.to(target)
        pipe.set_progress_bar_config(disable=True)
        logger.info("loaded %s from %s on %s (%s)", model, path_or_id, target, dtype)
        folder = Path(path_or_id) if Path(path_or_id).is_dir() else None
        return cls(
            pipe, model_name=model, device=target, dtype=dtype, preview=PreviewProjection.for_model(folder)
        )

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
    ) -> list[PIL.Image.Image]:
        """Render `frames` in one batch and return their images in order.

        on_step(step_index, total_steps, latents) runs after every denoising step (latents of the whole
        batch); should_cancel() is checked before the first and after every step and raises
        RenderCancelled when it returns True.
        """
        # 1. Check inputs
        check_inputs(params, frames)
        if should_cancel is not None and should_cancel():
            raise RenderCancelled("cancelled before the first step")

        # 2. Encode every distinct prompt once (cached across calls); "" is the unconditional prompt
        embeddings = self.encode(
            [params.negative_prompt, *(p for f in frames for p in (f.prompt_a, f.prompt_b))]
        )

        # 3. Interpolate text embeddings per frame
        prompt_embeds = torch.cat(
            [
                interpolate(
                    embeddings[f.prompt_a], embeddings[f.prompt_b], f.local_t, params.text_interpolation
                )
                for f in frames
            ]
        )
        negative_embeds = embeddings[params.negative_prompt].repeat(len(frames), 1, 1)

        # 4. One noise latent from the seed, drawn on the CPU so every device gets the same noise
        pipe = self._pipeline_for_call(params.scheduler)
        latent_shape = (
            1,
            pipe.unet.config.in_channels,
            params.height // pipe.vae_scale_factor,
            params.width // pipe.vae_scale_factor,
        )
        noise = torch.randn(latent_shape, generator=torch.Generator("cpu").manual_seed(params.seed))
        latents = noise.to(device=self.device, dtype=self.dtype).repeat(len(frames), 1, 1, 1)

        def step_end(
            pipeline: StableDiffusionPipeline, step_index: int, timestep: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            if on_step is not None:
                on_step(step_index, pipeline.num_timesteps, tensors["latents"])
            if should_cancel is not None and should_cancel():
                raise RenderCancelled(f"cancelled after step {step_index + 1} of {pipeline.num_timesteps}")
            return tensors

        # 5. Denoise and decode
        with torch.inference_mode():
            result = pipe(
                prompt_embeds=prompt_embeds,
                negative_prompt_embeds=negative_embeds,
                latents=latents,
                num_inference_steps=params.steps,
                guidance_scale=params.guidance_scale,
                width=params.width,
                height=params.height,
                callback_on_step_end=step_end,
                callback_on_step_end_tensor_inputs=["latents"],
                output_type="pil",
            )
        return list(result.images)

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


_engines: dict[tuple[str, str], Engine] = {}
_engines_lock = threading.Lock()


def get_engine(model: str, models_dir: Path | None = None, device: str | None = None) -> Engine:
    """The process-wide Engine for `model` on `device`, loaded on first use (thread-safe)."""
    key = (model, str(resolve_device(device)))
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = Engine.load(model, device=device, models_dir=models_dir)
            _engines[key] = engine
        return engine
