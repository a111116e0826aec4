"""Image endpoints, engine side: a picture's starting noise by DDIM inversion, and morphs between pictures.

- `fit_image`: the picture centre-cropped to the render's aspect ratio and resized to its size.
- `Engine`-level `invert`: VAE-encode the picture, then run the model's own DDIM scheduler backwards
  (diffusers' DDIMInverseScheduler built from the pipeline's scheduler config, no clipping) for `steps`
  steps at guidance 1, conditioned on the picture's prompt. Sampling that noise forward with DDIM at
  guidance 1 and the same prompt reconstructs the picture. Cached per engine by (picture hash, size,
  steps, prompt): an inversion is computed once and reused across renders and transitions.
- `adain_slerp`: the noise between two inverted noises: slerp, then each channel's mean and standard
  deviation set to the linear blend of the two endpoints' (AdaIN, as DiffMorpher does), so an in-between
  keeps the latent statistics the denoiser expects instead of the slerp's.
- `morph`: frames at given t between two endpoints: AdaIN-slerp noise, interpolated text embedding, DDIM at
  guidance 1 (the inversion's), optionally attention interpolation (engine/attention.py) with the two
  endpoints' own trajectories as the keyframes. The frames at t = 0 and 1 are the pictures themselves (or
  their reconstructions, `reconstruct=True`).

The studio's keyframe images (docs/image-endpoints.md) come here through worker/keyframe_images.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler

from engine import attention
from engine.interpolation import interpolate, slerp
from engine.sampling import FrameMix, Group, LoopStats, decode, denoise_groups

INVERSION_CACHE_SIZE = 64


def _ddim_options(pipe: Any) -> dict[str, Any]:
    """The DDIM sampler and its inverse on the same timesteps: SD's alphas, no clipping, and a spacing
    the inverse scheduler has ("leading" where the model's config says "linspace")."""
    spacing = pipe.scheduler.config.get("timestep_spacing", "leading")
    return {
        "clip_sample": False,
        "set_alpha_to_one": False,
        "timestep_spacing": spacing if spacing in ("leading", "trailing") else "leading",
    }


def fit_image(image: PIL.Image.Image, width: int, height: int) -> PIL.Image.Image:
    """Centre-crop to width:height, then resize to width x height (RGB)."""
    image = image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    crop_w, crop_h = round(width / scale), round(height / scale)
    left, top = (image.width - crop_w) // 2, (image.height - crop_h) // 2
    cropped = image.crop((left, top, left + crop_w, top + crop_h))
    return cropped.resize((width, height), PIL.Image.Resampling.LANCZOS)


def image_hash(image: PIL.Image.Image) -> str:
    """sha256 of the picture's RGB pixels and size (what the inversion depends on)."""
    rgb = image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def adain_slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """slerp(a, b, t) with per-channel mean and std set to the blend of a's and b's (B, C, h, w)."""
    if t <= 0.0:
        return a.clone()
    if t >= 1.0:
        return b.clone()
    mixed = slerp(a, b, t).float()
    dims = (2, 3)
    mean = torch.lerp(a.float().mean(dims, keepdim=True), b.float().mean(dims, keepdim=True), t)
    std = torch.lerp(a.float().std(dims, keepdim=True), b.float().std(dims, keepdim=True), t)
    normal = (mixed - mixed.mean(dims, keepdim=True)) / mixed.std(dims, keepdim=True).clamp_min(1e-6)
    return (normal * std + mean).to(a.dtype)


@dataclass(frozen=True)
class Picture:
    """An endpoint picture with its prompt (the text condition of its inversion and of the morph)."""

    image: PIL.Image.Image
    prompt: str


def latents_png(latents: torch.Tensor) -> bytes:
    """Latents as a lossless PNG: their float32 bytes as the RGBA pixels of one row (a frame store keeps
    PNG files by key; this lets an inversion live beside the frames)."""
    raw = latents.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes()
    out = io.BytesIO()
    PIL.Image.frombytes("RGBA", (len(raw) // 4, 1), raw).save(out, format="PNG")
    return out.getvalue()


def png_latents(data: bytes, shape: tuple[int, ...]) -> torch.Tensor | None:
    """latents_png read back (None when the bytes are not latents of that shape)."""
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            raw = image.tobytes() if image.mode == "RGBA" else b""
    except (OSError, ValueError):
        return None
    if len(raw) != 4 * math.prod(shape):
        return None
    return torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy()).reshape(shape)


#: Where an inversion is kept beyond this process: (load(key) -> PNG bytes or None, save(key, PNG bytes)).
LatentStore = tuple[Callable[[str], bytes | None], Callable[[str, bytes], None]]


class Inverter:
    """DDIM inversion of pictures on one engine's pipeline, cached by key in the process and, when
    `keep_in` gave it a store, beside the frames (so a second worker reuses an inversion)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._cache: OrderedDict[tuple[str, int, int, int, str, int], torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        self._store: LatentStore | None = None
        self._namespace = ""
        #: U-Net calls of the inversions actually computed (the cache's hits cost none).
        self.stats = LoopStats()

    def keep_in(self, store: LatentStore, namespace: str) -> None:
        """Keep inversions in `store` too, under keys that hash `namespace` (the model's revision)."""
        self._store, self._namespace = store, namespace

    def _stored_key(self, key: tuple[Any, ...]) -> str:
        text = json.dumps(["inversion", self.engine.model_name, self._namespace, *key], ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    def encode(self, image: PIL.Image.Image, width: int, height: int) -> torch.Tensor:
        """VAE latents (1, C, h, w) of the fitted picture (the distribution's mean, scaled)."""
        pipe = self.engine.pipe
        fitted = np.asarray(fit_image(image, width, height), dtype=np.float32) / 127.5 - 1.0
        pixels = torch.from_numpy(fitted).permute(2, 0, 1)[None].to(self.engine.device, self.engine.dtype)
        with torch.inference_mode():
            latents = pipe.vae.encode(pixels).latent_dist.mean
        return latents * pipe.vae.config.scaling_factor

    def invert(self, picture: Picture, width: int, height: int, steps: int, refine: int = 0) -> torch.Tensor:
        """The starting noise (1, C, h, w) whose DDIM sampling at guidance 1 gives the picture back."""
        key = (image_hash(picture.image), width, height, steps, picture.prompt, refine)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        encoded = self.encode(picture.image, width, height)
        kept = self._store[0](self._stored_key(key)) if self._store is not None else None
        found = png_latents(kept, tuple(encoded.shape)) if kept is not None else None
        if found is not None:
            latents = found.to(self.engine.device, self.engine.dtype)
        else:
            latents = self.invert_latents(encoded, picture.prompt, steps, refine)
            if self._store is not None:
                self._store[1](self._stored_key(key), latents_png(latents))
        with self._lock:
            self._cache[key] = latents
            while len(self._cache) > INVERSION_CACHE_SIZE:
                self._cache.popitem(last=False)
        return latents

    def invert_latents(self, latents: torch.Tensor, prompt: str, steps: int, refine: int = 0) -> torch.Tensor:
        """DDIM inversion of clean latents (1, C, h, w) to the noise after `steps` inverse steps.

        refine > 0: each inverse step is solved as a fixed point (the noise prediction taken at the step's
        own end, as the forward DDIM step uses it; FreeMorph's and ReNoise's idea), `refine` more U-Net
        calls per step. bench/methods.py --images --refine N measures it; the studio uses 0.
        """
        pipe = self.engine.pipe
        scheduler = DDIMInverseScheduler.from_config(pipe.scheduler.config, **_ddim_options(pipe))
        scheduler.set_timesteps(steps, device=self.engine.device)
        cond = self.engine.encode([prompt])[prompt]
        with torch.inference_mode():
            for t in scheduler.timesteps:
                eps = pipe.unet(latents, t, encoder_hidden_states=cond, return_dict=False)[0]
                after = scheduler.step(eps, t, latents, return_dict=False)[0]
                for _ in range(refine):
                    eps = pipe.unet(after, t, encoder_hidden_states=cond, return_dict=False)[0]
                    after = scheduler.step(eps, t, latents, return_dict=False)[0]
                latents = after
                self.stats.unet_calls += 1 + refine
                self.stats.unet_items += 1 + refine
        return latents

    def sample(
        self,
        noise: torch.Tensor,
        cond: torch.Tensor,
        steps: int,
        mixes: list[FrameMix | None] | None = None,
        mix_steps: int = 0,
    ) -> torch.Tensor:
        """DDIM at guidance 1 (the inversion's sampler) from noise (B, C, h, w) under cond (B, 77, d)."""
        engine = self.engine
        scheduler = DDIMScheduler.from_config(engine.pipe.scheduler.config, **_ddim_options(engine.pipe))
        empty = engine.encode([""])[""]
        group = Group(
            lambda step: cond,
            empty.repeat(noise.shape[0], 1, 1),
            scheduler,
            0,
            steps,
            latents=noise,
            mixes=mixes or (),
        )
        mixing = attention.mixing(engine.pipe.unet) if mix_steps else contextlib.nullcontext()
        with torch.inference_mode(), mixing:
            (final,) = denoise_groups(
                engine.pipe.unet, [group], guidance_scale=1.0, steps=steps, mix_steps=mix_steps
            )
        return final

    def morph(
        self,
        a: Picture,
        b: Picture,
        ts: Sequence[float],
        *,
        width: int,
        height: int,
        steps: int,
        text_interpolation: str = "lerp",
        attention_mode: str = "none",
        attention_steps: float = 0.5,
        reconstruct: bool = False,
    ) -> list[PIL.Image.Image]:
        """Frames at ts (each in [0, 1]) from picture a to picture b (module docstring)."""
        engine = self.engine
        fitted = [fit_image(p.image, width, height) for p in (a, b)]
        shown = [
            None if reconstruct else fitted[0] if t <= 0.0 else fitted[1] if t >= 1.0 else None for t in ts
        ]
        if all(image is not None for image in shown):  # only the pictures themselves: nothing to sample
            return [image for image in shown if image is not None]
        noise_a, noise_b = (self.invert(p, width, height, steps) for p in (a, b))
        embeddings = engine.encode([a.prompt, b.prompt])
        # Rows 0 and 1 are the pictures' own trajectories (the keyframes of attention interpolation).
        rows = [0.0, 1.0, *ts]
        latents = torch.cat([adain_slerp(noise_a, noise_b, t) for t in rows])
        cond = torch.cat(
            [interpolate(embeddings[a.prompt], embeddings[b.prompt], t, text_interpolation) for t in rows]
        )
        mixes: list[FrameMix | None] = [None, None]
        mixes += [
            None if attention_mode == "none" else FrameMix(attention_mode, t, (0, 0), (0, 1)) for t in ts
        ]
        mix_steps = min(steps, round(attention_steps * steps)) if attention_mode != "none" else 0
        final = self.sample(latents, cond, steps, mixes, mix_steps)
        with torch.inference_mode():
            images = decode(engine.pipe, final[2:])
        return [made if image is None else image for image, made in zip(shown, images, strict=True)]
