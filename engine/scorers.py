"""Scorers: what a frame looks like, as a vector, so the web side can measure a transition's shape.

Three kinds, chosen per model in settings (SEGUE_SCORER):
- `clip`: CLIP image embeddings, and each frame's similarity to its two bracketing prompts (text
  embeddings of the same CLIP). Segue-mini ships its own small CLIP (`clip/` next to the model);
  Stable Diffusion uses a configured CLIP id or directory, loaded from the local cache only.
- `unet`: the rendering model's own up-block activations. The frame is encoded with the VAE, noised to
  timestep UNET_TIMESTEP with fixed noise, and passed once through the U-Net with the empty prompt; the
  output of up-block UNET_BLOCK is pooled (global mean plus a 2x2 grid of means, so a little layout
  survives) and normalised. Needs no extra weights, so it works for any model. The human-alignment
  study found intermediate up-blocks closer to human similarity than the bottleneck; on Segue-mini
  `python -m training.probe_unet_features` measures which block separates the world's scenes best.
- `ssim`: a 32x32 grey thumbnail; distances are 1 - SSIM, for change only (no prompt similarity).

Every scorer is deterministic: the same image gives the same vector within float tolerance.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from engine.hooks import hook_this_thread

logger = logging.getLogger(__name__)

#: Which up-block and how much noise the U-Net scorer uses (see the module docstring and the probe).
UNET_BLOCK = 1  # probe on Segue-mini: objects NN accuracy 0.573 vs 0.475 (block 0) and 0.527 (block 2)
UNET_TIMESTEP = 200
SSIM_SIDE = 32
DEFAULT_SD_CLIP = "openai/clip-vit-large-patch14"


@dataclass(frozen=True)
class FrameScoreValues:
    """One frame as a scorer saw it."""

    embedding: np.ndarray  # float32, L2-normalised except for ssim thumbnails
    sim_a: float | None = None
    sim_b: float | None = None


class Scorer(ABC):
    name: str

    @abstractmethod
    def score(
        self, images: Sequence[PIL.Image.Image], prompts: Sequence[tuple[str, str]]
    ) -> list[FrameScoreValues]:
        """Score a batch of frames; prompts[i] = (prompt_a, prompt_b) bracketing frame i."""


def _projected(output: Any) -> torch.Tensor:
    """CLIP's projected features: a tensor in transformers 4.x, the pooler output of a model output in 5.x."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class ClipScorer(Scorer):
    name = "clip"

    def __init__(self, location: str, device: torch.device | str = "cpu") -> None:
        from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

        try:
            self.model = CLIPModel.from_pretrained(location, local_files_only=True).eval().to(device)
            self.processor = CLIPImageProcessor.from_pretrained(location, local_files_only=True)
            self.tokenizer = CLIPTokenizer.from_pretrained(location, local_files_only=True)
        except OSError as exc:
            raise FileNotFoundError(
                f"the CLIP scorer needs {location!r} on this machine (a directory or a hub id already in the "
                "local cache); set SEGUE_SCORER_CLIP to one, or SEGUE_SCORER=unet,ssim to score without CLIP"
            ) from exc
        self.device = torch.device(device)
        self._texts: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()

    def _text(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        missing = [p for p in dict.fromkeys(prompts) if p not in self._texts]
        if missing:
            tokens = self.tokenizer(missing, padding=True, truncation=True, return_tensors="pt").to(
                self.device
            )
            with torch.inference_mode():
                features = _normalise(_projected(self.model.get_text_features(**tokens)).float())
            with self._lock:
                self._texts.update(zip(missing, features.cpu(), strict=True))
        return {p: self._texts[p] for p in prompts}

    def score(
        self, images: Sequence[PIL.Image.Image], prompts: Sequence[tuple[str, str]]
    ) -> list[FrameScoreValues]:
        pixels = self.processor(images=[i.convert("RGB") for i in images], return_tensors="pt")[
            "pixel_values"
        ]
        with torch.inference_mode():
            output = self.model.get_image_features(pixel_values=pixels.to(self.device))
            features = _normalise(_projected(output).float()).cpu()
        texts = self._text([p for pair in prompts for p in pair])
        return [
            FrameScoreValues(
                embedding=feature.numpy().astype(np.float32),
                sim_a=float(feature @ texts[a]),
                sim_b=float(feature @ texts[b]),
            )
            for feature, (a, b) in zip(features, prompts, strict=True)
        ]


class UNetScorer(Scorer):
    name = "unet"

    def __init__(self, pipe: Any, block: int = UNET_BLOCK, timestep: int = UNET_TIMESTEP) -> None:
        self.pipe = pipe
        self.block = block
        self.timestep = timestep
        self._uncond: torch.Tensor | None = None

    def features(self, images: Sequence[PIL.Image.Image], blocks: Sequence[int]) -> dict[int, torch.Tensor]:
        """Pooled activations of the given up-blocks for a batch (used by the probe to compare blocks)."""
        pipe = self.pipe
        device, dtype = pipe.unet.device, pipe.unet.dtype
        array = np.stack([np.asarray(i.convert("RGB"), dtype=np.float32) for i in images])
        pixels = torch.from_numpy(array).permute(0, 3, 1, 2).div(127.5).sub(1.0).to(device, dtype)
        captured: dict[int, torch.Tensor] = {}

        def keeper(block: int) -> Callable[[Any], None]:
            def keep(out: Any) -> None:
                captured[block] = out[0] if isinstance(out, tuple) else out

            return keep

        hooks = [hook_this_thread(pipe.unet.up_blocks[b], keeper(b)) for b in blocks]
        try:
            with torch.inference_mode():
                latents = pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor
                noise = torch.randn(latents.shape[1:], generator=torch.Generator("cpu").manual_seed(0))
                alpha = pipe.scheduler.alphas_cumprod[self.timestep].to(torch.float32)
                noisy = alpha.sqrt() * latents + (1 - alpha).sqrt() * noise.to(device, dtype)
                if self._uncond is None:
                    tokens = pipe.tokenizer(
                        "",
                        padding="max_length",
                        max_length=pipe.tokenizer.model_max_length,
                        return_tensors="pt",
                    )
                    self._uncond = pipe.text_encoder(tokens.input_ids.to(device))[0].to(dtype)
                timestep = torch.full((len(images),), self.timestep, device=device)
                pipe.unet(noisy, timestep, encoder_hidden_states=self._uncond.expand(len(images), -1, -1))
        finally:
            for hook in hooks:
                hook.remove()
        pooled = {}
        for b, act in captured.items():
            act = act.float()
            grid = torch.nn.functional.adaptive_avg_pool2d(act, 2).flatten(1)
            pooled[b] = _normalise(torch.cat([act.mean(dim=(2, 3)), grid], dim=1)).cpu()
        return pooled

    def score(
        self, images: Sequence[PIL.Image.Image], prompts: Sequence[tuple[str, str]]
    ) -> list[FrameScoreValues]:
        features = self.features(images, [self.block])[self.block]
        return [FrameScoreValues(embedding=f.numpy().astype(np.float32)) for f in features]


class SsimScorer(Scorer):
    name = "ssim"

    def score(
        self, images: Sequence[PIL.Image.Image], prompts: Sequence[tuple[str, str]]
    ) -> list[FrameScoreValues]:
        thumbs = [
            np.asarray(
                i.convert("L").resize((SSIM_SIDE, SSIM_SIDE), PIL.Image.Resampling.BOX), dtype=np.float32
            )
            / 255.0
            for i in images
        ]
        return [FrameScoreValues(embedding=t.reshape(-1)) for t in thumbs]


def clip_location(model_folder: Path | None, configured: str) -> str:
    """The model's own CLIP when it ships one (Segue-mini's clip/), else the configured id or directory."""
    if configured:
        return configured
    if model_folder is not None and (model_folder / "clip" / "config.json").is_file():
        return str(model_folder / "clip")
    return DEFAULT_SD_CLIP


def build_scorers(names: Sequence[str], pipe: Any, model_folder: Path | None, clip: str = "") -> list[Scorer]:
    """The scorers asked for; one that cannot load is left out with a warning (never failing a render)."""
    scorers: list[Scorer] = []
    for name in names:
        try:
            if name == "clip":
                scorers.append(ClipScorer(clip_location(model_folder, clip), device=pipe.unet.device))
            elif name == "unet":
                scorers.append(UNetScorer(pipe))
            elif name == "ssim":
                scorers.append(SsimScorer())
            else:
                raise ValueError(f"unknown scorer {name!r}; choose from clip, unet, ssim")
        except (FileNotFoundError, ValueError) as exc:
            logger.warning("scorer %s unavailable: %s", name, exc)
    return scorers
