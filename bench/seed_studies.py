"""Two published studies, re-run on Segue's engine: tables shaped like theirs, plus CSV.

    python -m bench.seed_studies [--study guided|noise|both] [--model segue-mini] [--frames 150]
                                 [--noise-frames 16] [--csv-dir bench/results]

(a) **Guided interpolation** (the founding study): P1 → P2, one noise latent for every frame, 25 steps,
    batches of 3, 150 frames, first plainly, then with two intermediate prompts inserted ("A place where
    technology and nature coexist" at 1/3, "A girl standing in a city garden" at 2/3). Reported: from
    adjacent RMS pixel distances smoothness (1 - Gini), max jump, mean jump, PPL, PDV and ISTD; from the
    CLIP similarity of each frame to P1 and P2 (the model's own CLIP when it ships one), where the end
    prompt takes over (crossing t) and how steadily (monotonicity, Spearman rho of progress against t).
(b) **Noise paths** (the latent-space blog): one prompt, the noise travelling from seed 1 to seed 2 on
    the linear, normalized and slerp paths (and translation), DPM-Solver++, 30 steps, guidance 7.5.
    Reported: InterpScore (mean over frames of max(100 cos(CLIP text, CLIP image), 0)), the std of the
    starting noise at the midpoint and its minimum over the path (linear: 0.707), and the pixel metrics.

On Stable Diffusion 1.4 with a GPU (SEGUE_MODEL=CompVis/stable-diffusion-v1-4, --size 512) these are the
original experiments with their prompts; on Segue-mini they run on a CPU with prompts from its world
(--noise-prompt; the blog's cat is not in it) at its 64x64 size.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from bench.methods import engine_for, markdown, quality, render, write_csv
from core import metrics
from core.params import RenderSnapshot
from engine.noise import noise_between
from engine.pipeline import Engine

P1 = "A futuristic cityscape, vibrant and detailed"
P2 = (
    "A cheerful young girl with big sparkling eyes, standing in a magical forest, accompanied by a talking "
    "animal, soft lighting, Disney-style, whimsical and heartwarming atmosphere"
)
GUIDES = [(1 / 3, "A place where technology and nature coexist"), (2 / 3, "A girl standing in a city garden")]
BLOG_PROMPT = "An high resolution photo of a cat"
MINI_PROMPT = "a dog in a forest at noon"


def clip_scorer(engine: Engine) -> Any | None:
    """The model's own CLIP (Segue-mini ships one) or the configured one; None when none is at hand."""
    try:
        from engine.scorers import ClipScorer, clip_location
        from infra.config import get_settings

        folder = Path(engine.folder) if getattr(engine, "folder", None) else None
        return ClipScorer(
            clip_location(folder, getattr(get_settings(), "scorer_clip", "")), device=engine.device
        )
    except Exception as exc:  # no CLIP: the tables say n/a
        print(f"(no CLIP scorer: {exc})")
        return None


def snapshot(model: str, size: int, **values: Any) -> RenderSnapshot:
    return RenderSnapshot.model_validate({"model": model, "width": size, "height": size, **values})


def guided(engine: Engine, model: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    clip = clip_scorer(engine)
    rows = []
    for label, inner in (("plain P1 → P2", []), ("with two intermediate prompts", GUIDES)):
        keyframes = [
            {"position": 0.0, "prompt": P1},
            *({"position": p, "prompt": text} for p, text in inner),
            {"position": 1.0, "prompt": P2},
        ]
        snap = snapshot(
            model,
            args.size,
            seed=args.seed,
            steps=25,
            guidance_scale=7.5,
            frames=args.frames,
            batch_size=3,
            keyframes=keyframes,
        )
        run = render(engine, snap)
        row: dict[str, Any] = {"run": label, "frames": len(run.ts), **quality(run.images)}
        if clip is not None:
            scores = clip.score(run.images, [(P1, P2)] * len(run.images))
            progress = metrics.progress([s.sim_a for s in scores], [s.sim_b for s in scores])
            row["crossing_t"] = metrics.crossing_t(run.ts, progress)
            row["monotonicity"] = metrics.monotonicity(run.ts, progress)
        row["seconds"] = round(run.seconds, 1)
        rows.append(row)
        print(f"  {label}: {run.seconds:.1f} s", flush=True)
    return rows


def noise_paths(engine: Engine, model: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    clip = clip_scorer(engine)
    prompt = args.noise_prompt or (BLOG_PROMPT if args.size >= 256 else MINI_PROMPT)
    shape = (1, engine.pipe.unet.config.in_channels, args.size // 8, args.size // 8)
    rows = []
    for path in args.paths:
        snap = snapshot(
            model,
            args.size,
            seed=1,
            steps=30,
            guidance_scale=7.5,
            scheduler="dpmsolver",
            frames=args.noise_frames,
            batch_size=args.batch_size,
            noise_interpolation=path,
            keyframes=[
                {"position": 0.0, "prompt": prompt, "seed": 1},
                {"position": 1.0, "prompt": prompt, "seed": 2},
            ],
        )
        run = render(engine, snap)
        stds = [float(noise_between(1, 2, t, path, shape).std()) for t in run.ts]
        mid = float(noise_between(1, 2, 0.5, path, shape).std())
        row: dict[str, Any] = {"noise path": path, "frames": len(run.ts)}
        if clip is not None:
            scores = clip.score(run.images, [(prompt, prompt)] * len(run.images))
            row["InterpScore"] = metrics.interp_score([s.sim_a for s in scores])
        row.update({"noise std at 0.5": mid, "min noise std": min(stds), **quality(run.images)})
        row["seconds"] = round(run.seconds, 1)
        rows.append(row)
        print(f"  {path}: {run.seconds:.1f} s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--study", choices=["guided", "noise", "both"], default="both")
    parser.add_argument("--model", default=None, help="default: SEGUE_MODEL")
    parser.add_argument("--size", type=int, default=None, help="default: 64 for built-in models, else 512")
    parser.add_argument("--frames", type=int, default=150, help="guided study: frames (the study used 150)")
    parser.add_argument("--seed", type=int, default=0, help="guided study: the one noise latent's seed")
    parser.add_argument("--noise-frames", type=int, default=16, help="noise study: frames per path")
    parser.add_argument("--noise-prompt", default="", help="noise study: the prompt (default: see above)")
    parser.add_argument("--paths", nargs="+", default=["linear", "normalized", "slerp", "translate"])
    parser.add_argument("--batch-size", type=int, default=4, help="noise study: frames per batch")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--csv-dir", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    from infra.config import get_settings

    settings = get_settings()
    model = args.model or settings.model
    args.size = args.size or settings.default_size or 64
    engine = engine_for(model, args.device)
    threads = torch.get_num_threads()
    print(f"model {model} on {engine.device} ({engine.dtype}), torch threads {threads}, {args.size}px")
    started = time.perf_counter()
    if args.study in ("guided", "both"):
        rows = guided(engine, model, args)
        print(f"\n### Guided interpolation: {args.frames} frames, 25 steps, batches of 3, one noise latent\n")
        print(markdown(rows, list(rows[-1])))
        write_csv(args.csv_dir / "guided_interpolation.csv", rows)
    if args.study in ("noise", "both"):
        rows = noise_paths(engine, model, args)
        setup = f"{args.noise_frames} frames, DPM-Solver++ 30 steps, guidance 7.5"
        print(f"\n### Noise paths, seed 1 → 2: {setup}\n")
        print(markdown(rows, list(rows[-1])))
        write_csv(args.csv_dir / "noise_paths.csv", rows)
    print(f"\nCSV in {args.csv_dir}; {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
