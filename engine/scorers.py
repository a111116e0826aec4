"""Scorers: what a frame looks like, as a vector, so the web side can measure a transition's shape.

Three kinds, chosen per model in settings (SEGUE_SCORER):
- `clip`: CLIP image embeddings, and each frame's similarity to its two bracketing prompts (text
  embeddings of the same CLIP). Segue-mini ships its own small CLIP (`clip/` next to the model);
  Stable Diffusion uses a configured CLIP id or directory, loaded from the local cache only.
- `unet`: the rendering model's own block activations. The frame is encoded with the VAE, noised with
  fixed noise, and passed once through the U-Net with the empty prompt; one block's output is pooled
  (global mean plus a 2x2 grid of means, so a little layout survives) and normalised. Needs no extra
  weights, so it works for any model. Which block and noise level: the one `python -m bench.layer_probe
  --record` found best for the model (odd-one-out triplets, as in the human-alignment study), recorded
  beside the model; without a record, UNET_BLOCK at UNET_TIMESTEP.
- `ssim`: a 32x32 grey thumbnail; distances are 1 - SSIM, for change only (no prompt similarity).

Every scorer is deterministic: the same image gives the same vector within float tolerance.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from engine.layer_features import BlockChoice, LayerFeatures

logger = logging.getLogger(__name__)

#: Which up-block and how much noise the U-Net scorer uses (see the module docstring and the probe).
#: The fallback when no layer probe is recorded for the model (bench/layer_probe.py --record).
UNET_BLOCK = "up_blocks.1"
UNET_TIMESTEP = 200  # on a 1000-step schedule
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

        from engine.pipeline import dtype_for

        device = torch.device(device)
        try:
            # The dtype the engine uses on this device, not the one the weights were saved in (Segue-mini's
            # CLIP is saved in fp16, which recent transformers keep: on a CPU without fast fp16 its 4 layers
            # took 65-70 ms for a batch of 8 frames of 64 x 64, against 11-12 ms in float32).
            model = CLIPModel.from_pretrained(location, local_files_only=True)
            self.model = model.eval().to(device=device, dtype=dtype_for(device))
            self.processor = CLIPImageProcessor.from_pretrained(location, local_files_only=True)
            self.tokenizer = CLIPTokenizer.from_pretrained(location, local_files_only=True)
        except OSError as exc:
            raise FileNotFoundError(
                f"the CLIP scorer needs {location!r} on this machine (a directory or a hub id already in the "
                "local cache); set SEGUE_SCORER_CLIP to one, or SEGUE_SCORER=unet,ssim to score without CLIP"
            ) from exc
        self.device = device
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

    def text_features(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """L2-normalised text features by prompt (cached), e.g. to choose a caption (engine/captions.py)."""
        return self._text(prompts)

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
    """The U-Net's own features at one block and noise level (engine/layer_features.py reads them).

    Scores are stored under the scorer's name, so a choice other than the default has its own name
    ("unet-up2-t500"): frames scored with another block are never compared with these."""

    def __init__(self, pipe: Any, block: str = UNET_BLOCK, timestep: int = UNET_TIMESTEP) -> None:
        self.reader = LayerFeatures(pipe)
        if block not in self.reader.blocks:
            raise ValueError(f"the U-Net has no block {block!r}; it has {', '.join(self.reader.blocks)}")
        self.block = block
        self.timestep = timestep
        is_default = (block, timestep) == (UNET_BLOCK, UNET_TIMESTEP)
        self.name = "unet" if is_default else f"unet-{BlockChoice(block, timestep).tag}"

    @classmethod
    def recorded(cls, pipe: Any, choice: BlockChoice | None) -> UNetScorer:
        """The scorer on the layer probe's recorded choice for this model, else on the default one."""
        if choice is None:
            return cls(pipe)
        return cls(pipe, block=choice.block, timestep=choice.timestep)

    def score(
        self, images: Sequence[PIL.Image.Image], prompts: Sequence[tuple[str, str]]
    ) -> list[FrameScoreValues]:
        latents = self.reader.latents(images)
        act = self.reader.activations(latents, self.timestep, [""] * len(images), [self.block])[self.block]
        act = act.float()
        # The global mean plus a 2x2 grid of means, so a little layout survives.
        grid = torch.nn.functional.adaptive_avg_pool2d(act, 2).flatten(1)
        features = _normalise(torch.cat([act.mean(dim=(2, 3)), grid], dim=1)).cpu()
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


def build_scorers(
    names: Sequence[str],
    pipe: Any,
    model_folder: Path | None,
    clip: str = "",
    unet_choice: BlockChoice | None = None,
) -> list[Scorer]:
    """The scorers asked for; one that cannot load is left out with a warning (never failing a render).

    `unet_choice`: the layer probe's recorded block and noise level for this model (None: the default)."""
    scorers: list[Scorer] = []
    for name in names:
        try:
            if name == "clip":
                scorers.append(ClipScorer(clip_location(model_folder, clip), device=pipe.unet.device))
            elif name == "unet":
                scorers.append(UNetScorer.recorded(pipe, unet_choice))
            elif name == "ssim":
                scorers.append(SsimScorer())
            else:
                raise ValueError(f"unknown scorer {name!r}; choose from clip, unet, ssim")
        except (FileNotFoundError, ValueError) as exc:
            logger.warning("scorer %s unavailable: %s", name, exc)
    return scorers
