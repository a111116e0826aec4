"""Stable Diffusion 1.x on a GPU through Segue's engine: seconds per frame and frames/s per batch and setup.

    python -m bench.gpu --model runwayml/stable-diffusion-v1-5   # or a local diffusers directory
                        [--size 512] [--steps 25] [--batches 1,4,8,16] [--tiny-vae DIR] [--lora FILE]
                        [--large 1024] [--out bench/results/gpu.md]
    python -m bench.gpu --dry [--size 64] [--batches 1,2]        # the whole script on the CPU

Rows, each at every batch size (frames of one transition, rendered by engine.pipeline.Engine.render):
1. fp16 + SDPA: what `Engine.load` gives on CUDA (half precision, torch's scaled_dot_product_attention).
2. + channels-last: the U-Net and VAE in channels-last memory format.
3. + torch.compile: the U-Net compiled (on --dry: the "eager" backend, which traces without generating code).
4. + tiny preview decoder: AutoencoderTiny (TAESD) decodes a preview of the batch every 5 steps, as a live
   render would (--tiny-vae DIR; on --dry a random TAESD-shaped one).
5. VAE slicing + tiling: the decode of one batch at --large pixels, plain and with slicing + tiling.
6. lcm: 4 steps of LCM at guidance 1 (the unconditional half skipped), with --lora fused when given
   (LCM-LoRA) - the few-step render of docs/gpu-and-speed.md.
Each row: seconds per frame, frames/s, U-Net and VAE seconds, the model share ((U-Net + VAE) / wall), the
peak GPU memory (torch.cuda.max_memory_allocated) and the process's peak resident memory (what a worker
holds). --dry: a random-weight model of SD 1.5's exact architecture (engine/random_sd.py) on the CPU in
float32, 2 steps unless --steps; the figures then say the script works, not how fast a GPU is.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import show

PROMPTS = ("a futuristic cityscape, vibrant and detailed", "a cheerful girl in a magical forest")
PREVIEW_EVERY = 5


@dataclass
class Timer:
    """Seconds spent inside a module's forward, synchronised on CUDA so the figure is the GPU's work."""

    seconds: float = 0.0
    _started: list[float] = field(default_factory=list)

    def attach(self, module: Any, device: Any) -> list[Any]:
        import torch

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        def before(*_: Any, **__: Any) -> None:
            sync()
            self._started.append(time.perf_counter())

        def after(*_: Any, **__: Any) -> None:
            sync()
            self.seconds += time.perf_counter() - self._started.pop()

        return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]


@dataclass
class Row:
    setup: str
    batch: int
    seconds: float
    frames: int
    unet: float
    vae: float
    gpu_peak_mib: float | None
    rss_peak_mib: float

    @property
    def per_frame(self) -> float:
        return self.seconds / self.frames

    @property
    def share(self) -> float:
        return (self.unet + self.vae) / self.seconds if self.seconds else 0.0


def rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def timed(engine: Any, timers: dict[str, Timer]) -> Iterator[None]:
    handles = [
        *timers["unet"].attach(engine.pipe.unet, engine.device),
        *timers["vae"].attach(engine.pipe.vae.decoder, engine.device),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def render_row(
    engine: Any, setup: str, batch: int, args: argparse.Namespace, *, steps: int | None = None, **pixel: Any
) -> Row:
    """One batch of `batch` in-between frames, rendered twice: a warm-up (compile, caches), then timed."""
    import torch

    from core.params import PixelSettings
    from engine.pipeline import FrameRequest

    params = PixelSettings(
        model=args.model_name,
        seed=1,
        steps=steps or args.steps,
        width=args.size,
        height=args.size,
        **pixel,
    )
    frames = [FrameRequest(*PROMPTS, (i + 1) / (batch + 1)) for i in range(batch)]
    on_step = args.on_step
    engine.render(params, frames, on_step=on_step)
    timers = {"unet": Timer(), "vae": Timer()}
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)
        torch.cuda.reset_peak_memory_stats(engine.device)
    with timed(engine, timers):
        started = time.perf_counter()
        engine.render(params, frames, on_step=on_step)
        if engine.device.type == "cuda":
            torch.cuda.synchronize(engine.device)
        seconds = time.perf_counter() - started
    gpu = torch.cuda.max_memory_allocated(engine.device) / 2**20 if engine.device.type == "cuda" else None
    unet, vae = timers["unet"].seconds, timers["vae"].seconds
    row = Row(setup, batch, seconds, batch, unet, vae, gpu, rss_peak_mib())
    log(f"{setup}, batch {batch}: {row.per_frame:.3f} s/frame, model share {row.share:.0%}")
    return row


def tiny_decoder(path: str | None, engine: Any) -> Any:
    """AutoencoderTiny from a local directory, or (dry) a random one of TAESD's shape."""
    from diffusers import AutoencoderTiny

    if path:
        vae = AutoencoderTiny.from_pretrained(path, torch_dtype=engine.dtype, local_files_only=True)
    else:
        vae = AutoencoderTiny()
    return vae.to(engine.device, engine.dtype).eval()


def decode_row(engine: Any, setup: str, batch: int, size: int, *, sliced: bool) -> Row:
    """Decode one batch of latents for a size x size picture, with or without VAE slicing + tiling."""
    import torch

    from engine.sampling import decode

    vae = engine.pipe.vae
    if sliced:
        vae.enable_slicing()
        vae.enable_tiling()
    latents = torch.randn(
        (batch, 4, size // engine.pipe.vae_scale_factor, size // engine.pipe.vae_scale_factor),
        generator=torch.Generator("cpu").manual_seed(0),
    ).to(engine.device, engine.dtype)
    try:
        if engine.device.type == "cuda":
            torch.cuda.synchronize(engine.device)
            torch.cuda.reset_peak_memory_stats(engine.device)
        started = time.perf_counter()
        with torch.inference_mode():
            decode(engine.pipe, latents)
        if engine.device.type == "cuda":
            torch.cuda.synchronize(engine.device)
        seconds = time.perf_counter() - started
    finally:
        vae.disable_slicing()
        vae.disable_tiling()
    gpu = torch.cuda.max_memory_allocated(engine.device) / 2**20 if engine.device.type == "cuda" else None
    row = Row(setup, batch, seconds, batch, 0.0, seconds, gpu, rss_peak_mib())
    log(f"{setup}, batch {batch} at {size}: {seconds:.3f} s")
    return row


def run(args: argparse.Namespace) -> list[Row]:
    import torch

    from engine.pipeline import Engine, uses_sdpa

    lora = Path(args.lora) if args.lora else None
    engine = Engine.load(args.model, device=args.device, lora=lora)
    label = "fp16 + SDPA" if engine.dtype == torch.float16 else "fp32 + SDPA"
    if args.dry:
        label += " (CPU, dry)"
    assert uses_sdpa(engine.pipe.unet), "the U-Net should run torch's scaled_dot_product_attention"
    args.on_step = None
    rows: list[Row] = []
    for batch in args.batches:
        rows.append(render_row(engine, label, batch, args))
    engine.pipe.unet.to(memory_format=torch.channels_last)
    engine.pipe.vae.to(memory_format=torch.channels_last)
    for batch in args.batches:
        rows.append(render_row(engine, "+ channels-last", batch, args))
    plain_unet = engine.pipe.unet
    compiled = torch.compile(plain_unet, backend="eager" if args.dry else "inductor", fullgraph=False)
    # The engine reads .config/.device from the U-Net: the compiled wrapper forwards both.
    engine.pipe.unet = compiled
    try:
        for batch in args.batches:
            setup = "+ torch.compile" + (" (eager, dry)" if args.dry else "")
            rows.append(render_row(engine, setup, batch, args))
    finally:
        engine.pipe.unet = plain_unet
    taesd = tiny_decoder(args.tiny_vae, engine)

    def preview(step: int, total: int, latents: Any) -> None:
        if (step + 1) % PREVIEW_EVERY and step + 1 != total:
            return
        with torch.inference_mode():
            taesd.decode(latents.to(taesd.dtype)).sample.clamp(-1, 1)

    args.on_step = preview
    for batch in args.batches:
        rows.append(render_row(engine, "+ tiny preview decoder", batch, args))
    args.on_step = None
    large_batch = min(args.batches)
    rows.append(decode_row(engine, f"VAE decode at {args.large}", large_batch, args.large, sliced=False))
    tiled = f"VAE slicing + tiling at {args.large}"
    rows.append(decode_row(engine, tiled, large_batch, args.large, sliced=True))
    lcm = f"lcm, {args.lcm_steps} steps, guidance 1" + (f", LoRA {lora.name}" if lora else "")
    for batch in args.batches:
        rows.append(
            render_row(engine, lcm, batch, args, steps=args.lcm_steps, scheduler="lcm", guidance_scale=1.0)
        )
    return rows


def table(rows: Sequence[Row], args: argparse.Namespace) -> str:
    lines = [
        f"SD 1.x at {args.size} x {args.size}, {args.steps} steps (lcm: {args.lcm_steps}), "
        f"model {args.model_name}, device {args.device}",
        "",
        "| setup | batch | s/frame | frames/s | U-Net s | VAE s | model share | GPU peak MiB "
        "| peak memory MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        gpu = f"{r.gpu_peak_mib:.0f}" if r.gpu_peak_mib is not None else "-"
        lines.append(
            f"| {r.setup} | {r.batch} | {r.per_frame:.3f} | {1 / r.per_frame:.2f} | {r.unet:.2f} | "
            f"{r.vae:.2f} | {r.share:.0%} | {gpu} | {r.rss_peak_mib:.0f} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="SD 1.x: a local diffusers directory or a hub id in the local cache")
    parser.add_argument("--dry", action="store_true", help="on the CPU with a random SD 1.5 (random_sd)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1 ... (default: cuda; cpu with --dry)")
    parser.add_argument("--size", type=int, default=512, help="width and height (default 512)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 25; 2 with --dry)")
    parser.add_argument("--batches", default=None, help="batch sizes (default 1,4,8,16; 1,2 with --dry)")
    parser.add_argument("--lcm-steps", type=int, default=4, help="steps of the lcm row (default 4)")
    parser.add_argument("--large", type=int, default=None, help="size of the slicing/tiling rows (1024)")
    parser.add_argument("--tiny-vae", default=None, help="local AutoencoderTiny (TAESD) directory")
    parser.add_argument("--lora", default=None, help="a LoRA file to fuse (e.g. LCM-LoRA's .safetensors)")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    args.device = args.device or ("cpu" if args.dry else "cuda")
    args.steps = args.steps or (2 if args.dry else 25)
    args.batches = [int(b) for b in (args.batches or ("1,2" if args.dry else "1,4,8,16")).split(",")]
    args.large = args.large or (2 * args.size if args.dry else 1024)
    if not args.model and not args.dry:
        parser.error("--model is required (a local SD 1.x directory or a cached hub id), or pass --dry")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from engine.pipeline import DeviceUnavailable, resolve_device

    try:
        resolve_device(args.device)
    except DeviceUnavailable as exc:
        print(f"bench.gpu: {exc}; on a machine without one, run with --dry", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="segue-gpu-bench-") as scratch:
        if args.model is None:
            from engine.random_sd import build_random_sd15

            log("building a random-weight SD 1.5 (--dry) ...")
            args.model = str(build_random_sd15(Path(scratch) / "sd15-random"))
        args.model_name = args.model
        rows = run(args)
    text = table(rows, args)
    return show(text, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
