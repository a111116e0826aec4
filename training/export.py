"""Assemble the trained parts into a diffusers StableDiffusionPipeline directory
(fp16 safetensors) plus the mini CLIP next to it:

models/segue-mini/
  model_index.json, scheduler/, text_encoder/, tokenizer/, unet/, vae/   (pipeline)
  clip/   (CLIPModel + CLIPProcessor: the scorer's CLIPScore / semantic progress model)
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from . import common


def export(
    dest: Path, dtype=torch.float16, unet_dir: Path | None = None, text_encoder_dir: Path | None = None
):
    """unet_dir / text_encoder_dir: another U-Net run (and its jointly trained text encoder) instead of
    the offset-noise fine-tune data/mini/unet_offset/final and the mini CLIP's text tower, e.g. for the
    frozen-vs-joint comparison."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTextModel, CLIPTokenizer

    clip_dir = common.DATA / "clip" / "final"
    vae = AutoencoderKL.from_pretrained(common.DATA / "vae" / "final")
    unet = UNet2DConditionModel.from_pretrained(unet_dir or common.DATA / "unet_offset" / "final")
    te = CLIPTextModel.from_pretrained(text_encoder_dir or clip_dir)
    tok = CLIPTokenizer.from_pretrained(clip_dir)
    sch = DDIMScheduler.from_config(common.scheduler_config())
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=te,
        tokenizer=tok,
        unet=unet,
        scheduler=sch,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(dtype=dtype)
    keep = {"README.md", "samples"}
    if dest.exists():
        for p in dest.iterdir():
            if p.name not in keep:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(dest, safe_serialization=True)
    # the slow-format tokenizer files (transformers 5 writes only tokenizer.json)
    for sub in ("tokenizer",):
        for f in ("vocab.json", "merges.txt", "tokenizer_config.json", "tokenizer.json"):
            shutil.copy(clip_dir / f, dest / sub / f)
    clip = CLIPModel.from_pretrained(clip_dir).to(dtype)
    clip.save_pretrained(dest / "clip", safe_serialization=True)
    for f in (
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
        "tokenizer.json",
        "preprocessor_config.json",
        "processor_config.json",
    ):
        if (clip_dir / f).exists():
            shutil.copy(clip_dir / f, dest / "clip" / f)
    CLIPImageProcessor.from_pretrained(dest / "clip")  # sanity
    # scheduler config: SD values
    sc = json.loads((dest / "scheduler" / "scheduler_config.json").read_text())
    assert sc["steps_offset"] == 1 and sc["beta_schedule"] == "scaled_linear"
    total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"exported to {dest} ({total / 1e6:.1f} MB)")
    return total


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--dest", default=str(common.MODEL_DIR))
    ap.add_argument("--fp32", action="store_true")
    ap.add_argument("--unet-dir", type=Path)
    ap.add_argument("--text-encoder-dir", type=Path)
    a = ap.parse_args()
    export(Path(a.dest), torch.float32 if a.fp32 else torch.float16, a.unet_dir, a.text_encoder_dir)
