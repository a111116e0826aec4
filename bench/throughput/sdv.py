"""6. stable-diffusion-videos (nateraw, 0.9.2): StableDiffusionWalkPipeline.make_clip_frames, batched, the
walk many users run instead of Segue, on Segue's own model weights, frames, steps, guidance and batch size.

Installed from its released package (`pip install -e ".[bench]"`, or `pip install --no-deps
stable_diffusion_videos==0.9.2`: its declared extras, gradio, realesrgan, librosa, torchvision and protobuf
3.20, do not install here). Its pipeline module imports its upscaler and its audio helpers at the top and
uses transformers' CLIPFeatureExtractor (renamed CLIPImageProcessor); so, inside this benchmark only,
`load_walk_pipeline` puts stubs for the upscaler and the audio helpers in sys.modules (the helpers' stub
holds the package's own `slerp`, compiled from its utils.py source), aliases CLIPFeatureExtractor, and
imports the real pipeline module. Nothing of the walk itself is replaced.

Equal work: its walk computes latents as height // 8, so on a model whose VAE downsamples 4x (Segue-mini)
it is asked for twice the size (128 x 128 for 64 x 64 pictures: 16 x 16 latents on both sides); its U-Net
calls and batch items are counted by a forward pre-hook (Segue's by its loop: Engine.last_stats). It
decodes with SD's fixed latent scale 0.18215, not the model's own (Segue-mini: 0.896), so its pictures on
Segue-mini are off in contrast while the work is the same.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

from bench.throughput.common import END_PROMPT, START_PROMPT, Run, log

#: The released version measured; `bench` extra in pyproject.toml.
SDV_VERSION = "0.9.2"
#: What to install when it is missing (the message the report prints).
INSTALL = f'pip install --no-deps stable_diffusion_videos=={SDV_VERSION}  (or: pip install -e ".[bench]")'


class Missing(RuntimeError):
    """stable-diffusion-videos is not installed in this environment."""


def _helpers_stub(package_dir: Path) -> types.ModuleType:
    """stable_diffusion_videos.utils without librosa and torchvision: only its slerp, from its own source."""
    import numpy as np
    import torch

    source = (package_dir / "utils.py").read_text()
    tree = ast.parse(source)
    kept: list[ast.stmt] = [
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "slerp"
    ]
    module = types.ModuleType("stable_diffusion_videos.utils")
    module.__dict__.update(np=np, torch=torch)
    exec(
        compile(ast.Module(body=kept, type_ignores=[]), str(package_dir / "utils.py"), "exec"),
        module.__dict__,
    )

    def unavailable(*_: Any, **__: Any) -> Any:
        raise RuntimeError("audio and video helpers of stable-diffusion-videos are stubbed in this benchmark")

    module.get_timesteps_arr = unavailable  # type: ignore[attr-defined]
    module.make_video_pyav = unavailable  # type: ignore[attr-defined]
    return module


def load_walk_pipeline() -> Any:
    """StableDiffusionWalkPipeline, imported without its upscaler, audio and video extras (see above)."""
    spec = importlib.util.find_spec("stable_diffusion_videos")
    if spec is None or not spec.submodule_search_locations:
        raise Missing(f"stable-diffusion-videos is not installed: {INSTALL}")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    import transformers

    if not hasattr(transformers, "CLIPFeatureExtractor"):
        transformers.CLIPFeatureExtractor = transformers.CLIPImageProcessor  # type: ignore[attr-defined]
    upscaler = types.ModuleType("stable_diffusion_videos.upsampling")
    upscaler.RealESRGANModel = None  # type: ignore[attr-defined]  # only used with upsample=True
    sys.modules.setdefault("stable_diffusion_videos.upsampling", upscaler)
    sys.modules.setdefault("stable_diffusion_videos.utils", _helpers_stub(package_dir))
    from diffusers.utils import logging as diffusers_logging
    from stable_diffusion_videos.stable_diffusion_pipeline import (  # type: ignore[import-untyped]
        StableDiffusionWalkPipeline,
    )

    diffusers_logging.set_verbosity_warning()  # its module turns diffusers' info logging on at import
    return StableDiffusionWalkPipeline


class UNetCount:
    """U-Net calls and batch items (rows), counted by a forward pre-hook."""

    def __init__(self, unet: Any) -> None:
        self.calls = 0
        self.items = 0
        self._handle = unet.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, _module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        sample = args[0] if args else kwargs["sample"]
        self.calls += 1
        self.items += int(sample.shape[0])

    def close(self) -> None:
        self._handle.remove()


def walk_pipeline_on(engine: Any) -> Any:
    """The walk pipeline around Segue's loaded weights (the same modules, so the same model), with
    Segue's DPM-Solver++ configuration."""
    from engine.pipeline import SCHEDULER_OVERRIDES, SCHEDULERS

    walk_cls = load_walk_pipeline()
    pipe = engine.pipe
    scheduler = SCHEDULERS["dpmsolver"].from_config(
        pipe.scheduler.config, **SCHEDULER_OVERRIDES.get("dpmsolver", {})
    )
    walk = walk_cls(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    walk.set_progress_bar_config(disable=True)
    return walk


def sdv_run(engine: Any, args: argparse.Namespace, batch: int) -> Run:
    """make_clip_frames over every frame at `batch`, timed; frames are read back from the files it wrote."""
    import PIL.Image
    import torch

    walk = walk_pipeline_on(engine)
    # Its latents are height // 8: ask for the size whose latents are Segue's (engine.pipe.vae_scale_factor).
    asked = args.size * 8 // engine.pipe.vae_scale_factor
    with tempfile.TemporaryDirectory(prefix="segue-sdv-") as out:
        common = dict(
            prompt_a=START_PROMPT,
            prompt_b=END_PROMPT,
            seed_a=args.seed,
            seed_b=args.seed,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            height=asked,
            width=asked,
            batch_size=batch,
        )
        walk.make_clip_frames(
            num_interpolation_steps=batch,
            save_path=Path(out) / "warm",
            **{**common, "num_inference_steps": 2},
        )
        count = UNetCount(engine.pipe.unet)
        started = time.perf_counter()
        try:
            walk.make_clip_frames(num_interpolation_steps=args.frames, save_path=Path(out) / "walk", **common)
        finally:
            count.close()
        seconds = time.perf_counter() - started
        run = Run(
            f"stable-diffusion-videos {SDV_VERSION} (make_clip_frames)",
            batch,
            args.frames,
            seconds,
            unet_items=count.items,
            threads=f"{torch.get_num_threads()} (this process)",
            note=f"{count.calls} U-Net calls, {asked} x {asked} asked (latents {asked // 8} x {asked // 8})",
        )
        for index, path in enumerate(sorted((Path(out) / "walk").glob("frame*.png"))):
            with PIL.Image.open(path) as image:
                run.images[index] = image.copy()
    size = next(iter(run.images.values())).size if run.images else None
    log(
        f"sdv batch {batch}: {seconds:.1f} s, {run.fps:.2f} frames/s, "
        f"{count.calls} U-Net calls, {count.items} items, frames {size}"
    )
    assert size is None or size == (args.size, args.size), f"its frames are {size}, Segue's {args.size}"
    return run
