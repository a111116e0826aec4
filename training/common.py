"""Shared pieces of the Segue-mini training scripts: configs, data cache, checkpoints."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from . import world

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("SEGUE_MINI_DATA", ROOT / "data" / "mini"))
MODEL_DIR = ROOT / "worker" / "models" / "segue-mini"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
N_TRAIN = 24000


def vae_config() -> dict:
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 3,
        up_block_types=["UpDecoderBlock2D"] * 3,
        block_out_channels=[32, 64, 64],
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
        mid_block_add_attention=False,
        scaling_factor=1.0,
    )


def unet_config() -> dict:
    return dict(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        block_out_channels=[32, 64, 128],
        layers_per_block=2,
        cross_attention_dim=128,
        attention_head_dim=4,
        norm_num_groups=32,
        # Global text conditioning: the prompt embedding, attention-pooled, is added to the timestep
        # embedding (diffusers' TextTimeEmbedding, as in DeepFloyd IF), so every ResNet block sees the
        # whole prompt, not only the cross-attention layers at 8x8 and 4x4. It reads the same
        # encoder_hidden_states, so StableDiffusionPipeline needs no extra input.
        addition_embed_type="text",
        addition_embed_type_num_heads=4,
    )


def clip_configs(vocab_size: int, bos: int, eos: int):
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    text = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
        projection_dim=128,
    )
    vision = CLIPVisionConfig(
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        image_size=64,
        patch_size=8,
        projection_dim=128,
    )
    return CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=128)


def scheduler_config() -> dict:
    return dict(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
        trained_betas=None,
    )


def load_world(split: str = "train", n: int = N_TRAIN, seed: int = 0):
    """Images (uint8 N,64,64,3), captions (list of lists), scenes (list of dict), cached on disk."""
    DATA.mkdir(parents=True, exist_ok=True)
    p = DATA / f"world_{split}_{seed}_{n}.npz"
    pj = DATA / f"world_{split}_{seed}_{n}.json"
    if p.exists() and pj.exists():
        imgs = np.load(p)["imgs"]
        meta = json.loads(pj.read_text())
        return imgs, meta["captions"], meta["scenes"]
    imgs, scenes, caps = world.make_dataset(n, seed=seed, split=split)
    np.savez(p, imgs=imgs)
    pj.write_text(json.dumps({"captions": caps, "scenes": [s.to_dict() for s in scenes]}))
    return imgs, caps, [s.to_dict() for s in scenes]


def to_tensor(imgs: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """float NCHW in [-1, 1] -> uint8 NHWC (the inverse of to_tensor)."""
    return t.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()


def save_grid(t: torch.Tensor, path: Path, nrow: int = 8, scale: int = 2):
    """t: N,3,H,W in [-1,1]."""
    from PIL import Image

    t = to_uint8(t)
    n, h, w, _ = t.shape
    rows = (n + nrow - 1) // nrow
    grid = np.zeros((rows * h, nrow * w, 3), dtype=np.uint8)
    for i in range(n):
        grid[(i // nrow) * h : (i // nrow + 1) * h, (i % nrow) * w : (i % nrow + 1) * w] = t[i]
    Image.fromarray(grid).resize((nrow * w * scale, rows * h * scale), Image.NEAREST).save(path)


class Progress:
    def __init__(self, total: int, start: int, name: str):
        self.total, self.start, self.name = total, start, name
        self.t0 = time.time()

    def line(self, step: int, **kv) -> str:
        done = step - self.start
        el = time.time() - self.t0
        rate = el / max(1, done)
        eta = rate * (self.total - step)
        frac = step / self.total
        bar = "#" * int(frac * 30) + "." * (30 - int(frac * 30))
        extra = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in kv.items())
        return f"[{self.name}] [{bar}] {step}/{self.total} {rate:.2f}s/it eta {eta / 60:.1f}m {extra}"


def cosine_lr(step: int, total: int, base: float, warmup: int = 200, floor: float = 0.05) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * min(1.0, p))))


def save_ckpt(path: Path, **state):
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
