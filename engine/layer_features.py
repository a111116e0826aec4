"""What each U-Net block sees in an image: one pooled vector per block, noise level and text conditioning.

The human-alignment study read a U-Net's blocks as a perception model: encode the image with the VAE, add
noise at timestep t, run the U-Net once, and pool each block's output over space. Here every down block,
the mid block and every up block is read (forward hooks), at each asked noise level, with the empty prompt
(unconditioned) and with the image's own prompt (conditioned). The noise is fixed (seed 0, the same for
every image), so two images differ only by what they show.

A noise level is given on the 1000-step scale the study uses (t = 50, 200, 500, 800) and scaled to the
scheduler's `num_train_timesteps`. The choice the confusion map's U-Net scorer uses (engine/scorers.py)
is recorded next to the model by `python -m bench.layer_probe --record` (see `BlockChoice`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from core.block_readings import TIMESTEPS
from engine.hooks import hook_this_thread

logger = logging.getLogger(__name__)

#: The noise levels of the human-alignment study, on a 1000-step schedule (one definition, in core).
STUDY_TIMESTEPS = TIMESTEPS

Pooling = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Reading:
    """Where a feature vector was read: a block ("up_blocks.1"), a noise level (1000-step scale), a prompt."""

    block: str
    timestep: int
    conditioned: bool


@dataclass(frozen=True)
class BlockChoice:
    """The block and noise level the U-Net scorer reads (unconditioned: a frame between two prompts has no
    single prompt of its own), as recorded by the layer probe for one model revision."""

    block: str
    timestep: int
    revision: str = ""
    accuracy: float | None = None
    source: str = ""

    @property
    def tag(self) -> str:
        """A short name for scores stored with this choice ("up1-t200")."""
        short = self.block.replace("down_blocks.", "down").replace("up_blocks.", "up").replace("_block", "")
        return f"{short}-t{self.timestep}"

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path, revision: str = "") -> BlockChoice | None:
        """The choice recorded at `path`, or None when there is none, it is unreadable, or it was probed on
        other weights (a recorded revision that differs from `revision`)."""
        try:
            data = json.loads(path.read_text())
            choice = cls(**{k: data[k] for k in ("block", "timestep", "revision", "accuracy", "source")})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring the layer probe's record %s: %s", path, exc)
            return None
        if revision and choice.revision and choice.revision != revision:
            logger.warning(
                "the layer probe's record %s is for revision %s, not %s: re-probe with "
                "`python -m bench.layer_probe --record`",
                path,
                choice.revision,
                revision,
            )
            return None
        return choice


def block_names(unet: Any) -> list[str]:
    """Every block the probe reads, in the order the U-Net runs them."""
    return (
        [f"down_blocks.{i}" for i in range(len(unet.down_blocks))]
        + ["mid_block"]
        + [f"up_blocks.{i}" for i in range(len(unet.up_blocks))]
    )


def scheduler_timestep(pipe: Any, timestep: int) -> int:
    """A 1000-step-scale noise level on this model's scheduler."""
    steps = int(pipe.scheduler.config.num_train_timesteps)
    return min(steps - 1, max(0, round(timestep * steps / 1000)))


def mean_pool(activation: torch.Tensor) -> torch.Tensor:
    """A block's output averaged over space: one vector of its channels per image."""
    return activation.float().mean(dim=(2, 3))


class _AllCaptured(Exception):
    """Raised by the last wanted block's hook: the rest of the U-Net pass is not needed."""


class LayerFeatures:
    """Reads a pipeline's U-Net blocks for batches of images (VAE-encode, noise, one U-Net pass)."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.blocks = block_names(pipe.unet)
        self._prompts: dict[str, torch.Tensor] = {}

    def latents(self, images: Sequence[PIL.Image.Image]) -> torch.Tensor:
        """The images' VAE latents (distribution means, scaled as the U-Net expects)."""
        pipe = self.pipe
        device, dtype = pipe.unet.device, pipe.unet.dtype
        array = np.stack([np.asarray(i.convert("RGB"), dtype=np.float32) for i in images])
        pixels = torch.from_numpy(array).permute(0, 3, 1, 2).div(127.5).sub(1.0).to(device, dtype)
        with torch.inference_mode():
            return pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor

    def prompt_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        """Text-encoder states of each prompt ("" for the unconditioned pass), cached per prompt."""
        pipe = self.pipe
        missing = [p for p in dict.fromkeys(prompts) if p not in self._prompts]
        if missing:
            tokens = pipe.tokenizer(
                missing,
                padding="max_length",
                max_length=pipe.tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            )
            with torch.inference_mode():
                states = pipe.text_encoder(tokens.input_ids.to(pipe.unet.device))[0].to(pipe.unet.dtype)
            self._prompts.update(zip(missing, states, strict=True))
        return torch.stack([self._prompts[p] for p in prompts])

    def activations(
        self, latents: torch.Tensor, timestep: int, prompts: Sequence[str], blocks: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """The raw outputs of `blocks` for one U-Net pass at a 1000-scale `timestep` with these prompts.

        The pass stops once the last of `blocks` has run: the scorer's default block (up_blocks.1) leaves out
        the two highest-resolution up blocks, the U-Net's costliest part at 512 x 512."""
        pipe = self.pipe
        device, dtype = pipe.unet.device, pipe.unet.dtype
        captured: dict[str, torch.Tensor] = {}
        modules = dict(pipe.unet.named_modules())
        wanted = set(blocks)

        def keep(name: str) -> Callable[[Any], None]:
            # Down blocks return (hidden states, skip connections); the others a tensor.
            def hook(output: Any) -> None:
                captured[name] = output[0] if isinstance(output, tuple) else output
                if wanted <= captured.keys():
                    raise _AllCaptured

            return hook

        # This thread's calls only: a worker scores batch k while batch k + 1 denoises on the same U-Net.
        hooks = [hook_this_thread(modules[name], keep(name)) for name in wanted]
        try:
            with torch.inference_mode():
                step = scheduler_timestep(pipe, timestep)
                noise = torch.randn(latents.shape[1:], generator=torch.Generator("cpu").manual_seed(0))
                alpha = pipe.scheduler.alphas_cumprod[step].to(torch.float32)
                noisy = alpha.sqrt() * latents + (1 - alpha).sqrt() * noise.to(device, dtype)
                states = self.prompt_embeddings(prompts).to(device)
                t = torch.full((len(latents),), step, device=device)
                pipe.unet(noisy.to(dtype), t, encoder_hidden_states=states)
        except _AllCaptured:
            pass
        finally:
            for hook in hooks:
                hook.remove()
        return captured

    def pooled(
        self,
        images: Sequence[PIL.Image.Image],
        prompts: Sequence[str],
        timesteps: Sequence[int] = STUDY_TIMESTEPS,
        conditioned: Sequence[bool] = (False, True),
        blocks: Sequence[str] | None = None,
        pool: Pooling = mean_pool,
    ) -> dict[Reading, torch.Tensor]:
        """One pooled vector per image for every block x noise level x conditioning: {Reading: [N, C]}."""
        blocks = list(blocks or self.blocks)
        latents = self.latents(images)
        out: dict[Reading, torch.Tensor] = {}
        for timestep in timesteps:
            for with_text in conditioned:
                texts = list(prompts) if with_text else [""] * len(images)
                for block, act in self.activations(latents, timestep, texts, blocks).items():
                    out[Reading(block, timestep, with_text)] = pool(act).cpu()
        return out
