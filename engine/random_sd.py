"""Stable Diffusion 1.5's exact architecture with random weights, built offline from its published configs.

The released v1-5 `model_index.json` names a CLIP ViT-L/14 text encoder, a U-Net with blocks
320/640/1280/1280 and cross-attention 768, the SD VAE (128/256/512/512, scaling 0.18215) and a PNDM
scheduler; the values below are those configs' own. With random weights the pictures are noise, but every
tensor has the shape, and every layer the cost, of the real model: tests and `bench/gpu.py --dry` run
Segue's Stable Diffusion path at 512 x 512 on a CPU before a GPU and the real weights are there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from engine.tiny_model import SD_SCHEDULE, build_tokenizer, clip_text_encoder, save_pipeline, sd_vae

MODEL_CARD = """\
---
library_name: diffusers
tags: [stable-diffusion, random-weights, test-fixture]
---
# Stable Diffusion 1.5 architecture, random weights (seed {seed})

Built by `engine.random_sd.build_random_sd15` from the published v1-5 configuration values. Pictures are
noise; shapes, memory and compute are those of the real model.
"""


def sd15_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=32,
        norm_eps=1e-5,
        act_fn="silu",
        downsample_padding=1,
        flip_sin_to_cos=True,
        freq_shift=0,
        mid_block_scale_factor=1,
        center_input_sample=False,
    )


def sd15_vae() -> AutoencoderKL:
    return sd_vae(
        (128, 256, 512, 512),
        layers_per_block=2,
        norm_num_groups=32,
        act_fn="silu",
        sample_size=512,
        scaling_factor=0.18215,
    )


def sd15_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    # openai/clip-vit-large-patch14's text tower, as SD 1.5 ships it.
    return clip_text_encoder(
        tokenizer,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        projection_dim=768,
    )


def sd15_scheduler() -> PNDMScheduler:
    return PNDMScheduler(**SD_SCHEDULE, set_alpha_to_one=False, skip_prk_steps=True)


def _shrink(module: Any) -> None:
    """Scale the random weights down so activations stay finite through 12 + 16 deep blocks in fp16."""
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if parameter.ndim > 1 and "norm" not in name:
                parameter.mul_(0.5)


def build_random_sd15(out_dir: Path, seed: int = 0, dtype: torch.dtype = torch.float16) -> Path:
    """Write SD 1.5's architecture with random weights to `out_dir` (diffusers layout) and return it.

    Saved in fp16 by default (1.7 GB instead of 3.4 GB); `from_pretrained(..., torch_dtype=float32)`
    loads it back in full precision for a CPU.
    """
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(out_dir / "tokenizer")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet, vae = sd15_unet(), sd15_vae()
        text_encoder = sd15_text_encoder(tokenizer)
    _shrink(unet)
    parts = {"vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "unet": unet}
    return save_pipeline(out_dir, parts, sd15_scheduler(), MODEL_CARD.format(seed=seed), dtype)
