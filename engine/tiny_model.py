"""A tiny random-weight Stable Diffusion pipeline, built offline in seconds.

It has the exact layout and interfaces of SD 1.x (4 latent channels, VAE downscale 8, CLIP tokenizer
with 77 tokens, epsilon prediction), so the engine, the worker and the web app run end to end on a
CPU without downloading anything. Its images are coloured noise: it is for tests and demos only.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, UNet2DConditionModel
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from engine.bpe import bytes_to_unicode

logger = logging.getLogger(__name__)

# OpenAI CLIP's BPE merges; open_clip_torch ships them in its wheel. Read as a data file only:
# importing open_clip would pull in torchvision.
BPE_DISTRIBUTION = "open_clip_torch"
BPE_FILE = "open_clip/bpe_simple_vocab_16e6.txt.gz"

MODEL_MAX_LENGTH = 77
VOCAB_SIZE = 49408
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"

MODEL_CARD = """\
---
library_name: diffusers
tags: [stable-diffusion, random-weights, test-fixture]
---
# segue-tiny

A Stable Diffusion 1.x-shaped pipeline with **random weights** (seed {seed}), built by
`engine.tiny_model.build_tiny_model`. It produces noise, not pictures: it exists so that
Segue's tests and offline demos exercise the real diffusers code path on a CPU in seconds.

- UNet: 2 blocks (32, 64 channels), cross-attention width 32
- VAE: 4 latent channels, downscale factor 8 (like SD)
- Text encoder: CLIP, hidden size 32, 2 layers; tokenizer: OpenAI CLIP BPE, 77 tokens
- Scheduler: DPM-Solver++ multistep with SD 1.x betas
"""


def clip_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """OpenAI CLIP's vocabulary and BPE merges, built exactly as `clip.simple_tokenizer` builds them."""
    bpe_path = Path(str(importlib.metadata.distribution(BPE_DISTRIBUTION).locate_file(BPE_FILE)))
    if not bpe_path.is_file():
        raise FileNotFoundError(
            f"CLIP BPE merges not found at {bpe_path}; install them with "
            f"`pip install --no-deps {BPE_DISTRIBUTION}`"
        )
    lines = gzip.decompress(bpe_path.read_bytes()).decode("utf-8").split("\n")
    # Line 0 is a header; 49152 - 256 - 2 merges fill the vocabulary up to 49408 with the 2 special tokens.
    merges = lines[1 : 49152 - 256 - 2 + 1]
    byte_chars = list(bytes_to_unicode().values())
    words = [*byte_chars, *(c + "</w>" for c in byte_chars), *("".join(m.split()) for m in merges)]
    words += [BOS_TOKEN, EOS_TOKEN]
    vocab = {word: index for index, word in enumerate(words)}
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"{bpe_path} gave a vocabulary of {len(vocab)} tokens, expected {VOCAB_SIZE}")
    return vocab, merges


def build_tokenizer(out_dir: Path) -> CLIPTokenizer:
    """Write vocab.json + merges.txt (what every transformers version reads) and return the tokenizer."""
    vocab, merges = clip_vocab_and_merges()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return CLIPTokenizer(
        vocab=str(out_dir / "vocab.json"),
        merges=str(out_dir / "merges.txt"),
        model_max_length=MODEL_MAX_LENGTH,
    )


def build_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def sd_vae(block_out_channels: tuple[int, int, int, int], **config: Any) -> AutoencoderKL:
    """An SD 1.x-shaped VAE: RGB in and out, 4 latent channels, four blocks of the given widths."""
    # Four blocks = three 2x downsamples = SD's factor 8, so width/height map to latents exactly as in SD.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=block_out_channels,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        **config,
    )


def build_vae() -> AutoencoderKL:
    return sd_vae((8, 8, 16, 16), layers_per_block=1, norm_num_groups=8, sample_size=64)


def clip_text_encoder(tokenizer: CLIPTokenizer, **sizes: Any) -> CLIPTextModel:
    """A CLIP text tower of the given sizes on the CLIP vocabulary, reading 77 tokens."""
    config = CLIPTextConfig(
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=MODEL_MAX_LENGTH,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **sizes,
    )
    return CLIPTextModel(config).eval()


def build_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    return clip_text_encoder(
        tokenizer, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )


#: SD 1.x's training schedule; steps_offset=1 matches the released SD configs.
SD_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
}


def build_scheduler() -> DPMSolverMultistepScheduler:
    return DPMSolverMultistepScheduler(**SD_SCHEDULE, prediction_type="epsilon")


def build_tiny_model(out_dir: Path, seed: int = 0) -> Path:
    """Write a complete random-weight SD pipeline in diffusers format to `out_dir` and return it.

    The same seed gives the same weights. Loads back with
    `StableDiffusionPipeline.from_pretrained(out_dir, local_files_only=True)`.
    """
    out_dir = Path(out_dir)
    tokenizer_dir = out_dir / "tokenizer"
    tokenizer = build_tokenizer(tokenizer_dir)
    # A private RNG stream: seeding must not disturb the caller's global torch RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet, vae, text_encoder = build_unet(), build_vae(), build_text_encoder(tokenizer)
    parts = {"vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "unet": unet}
    return save_pipeline(out_dir, parts, build_scheduler(), MODEL_CARD.format(seed=seed))


def save_pipeline(out_dir: Path, parts: dict[str, Any], scheduler: Any, card: str, dtype: Any = None) -> Path:
    """Save a random-weight SD pipeline (diffusers layout, `dtype` if given) with its model card as README."""
    # No safety checker: random weights draw noise. (A dict because diffusers' annotations reject None.)
    components: dict[str, Any] = {
        **parts,
        "scheduler": scheduler,
        "safety_checker": None,
        "feature_extractor": None,
    }
    pipe = StableDiffusionPipeline(**components, requires_safety_checker=False)
    if dtype is not None:
        pipe = pipe.to(dtype=dtype)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / "README.md").write_text(card, encoding="utf-8")
    return out_dir


def ensure_tiny_model(target: Path, seed: int = 0) -> Path:
    """Build the tiny model at `target` unless a complete one is already there; return `target`.

    Safe when several processes start at once: each builds in its own temp dir next to `target` and the
    first rename wins, so nobody ever sees a half-written model.
    """
    target = Path(target)
    if (target / "model_index.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build_tiny_model(scratch, seed=seed)
        try:
            os.rename(scratch, target)
        except OSError:
            if not (target / "model_index.json").is_file():
                raise
            logger.info("another process built %s first; using that one", target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
