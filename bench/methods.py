"""Every noise path × spacing × in-between method on fixed prompt pairs and seeds: metrics and wall time.

    python -m bench.methods [--model segue-mini] [--frames 12] [--steps 20] [--size 64]
                            [--paths linear normalized slerp translate] [--spacings uniform ease_in_out
                            perceptual adaptive] [--in-between full shared] [--csv bench/results/methods.csv]

    python -m bench.methods --attention [--pairs 20] [--frames 9] [--steps 25] [--batch-size 9]
                            [--csv bench/results/attention.csv]

Each run renders one transition per prompt pair exactly as a worker would (the same planner, probe pass,
trajectory sharing and engine), with the noise travelling from seed 1 at the start keyframe to seed 2 at
the end one, so the noise path matters. Per run it reports, from the RMS pixel distance of adjacent frames
(pixels in [0, 1]): smoothness (1 - Gini, AID), max jump, mean jump (consistency), PPL (sum), PDV
(variance), ISTD (std of adjacent pixel L2, Smooth Diffusion); frames, probe frames, U-Net evaluations
(batch items, 2 per frame-step with guidance) and seconds. Printed as a Markdown table, written as CSV.

--attention instead compares text blends with attention interpolation (docs/methods-attention.md): on
prompt pairs drawn from Segue-mini's world (training/world.py's caption grammar, fixed seeds), one seed per
pair as AID renders, for {lerp, slerp, inner, outer, fused} x {uniform, Beta spacing}: smoothness (1 - Gini
of adjacent distances) and mean adjacent distance on pixels (RMS) and on the confusion map's scorer (the
model's CLIP, cosine distance), endpoint fidelity (RMS pixel distance of the first and last frames to the
keyframes rendered alone), seconds and U-Net evaluations per frame.

--images measures image endpoints (engine/morph.py) on pictures Segue-mini made from known seeds (so the
true starting noise is known), with its own DDIM: inversion accuracy (cosine of the inverted against the
true noise; SSIM of the reconstruction against the picture) for pictures made at guidance 1 and at 7.5, and
for morphs between two such pictures, PPL and PDV (sum and variance of adjacent RMS pixel distances) and
smoothness for plain AdaIN slerp against slerp with attention interpolation. --refine N inverts with N
fixed-point iterations per step (engine/morph.Inverter.invert_latents) and reports inversion accuracy only,
with the same measures on the latents alone (no VAE): the true noise sampled, then inverted.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core import metrics
from core.params import PROBED_SPACINGS, RenderSnapshot
from core.timeline import FramePlan, frame_keys, render_order
from engine import fidelity
from engine.pipeline import Engine, FrameRequest, get_engine
from engine.probe import place, requests_for
from services import noise_paths
from services.noise_paths import shared_step

PAIRS: list[tuple[str, str]] = [
    ("a city at night", "a forest at dawn"),
    ("a boat on the sea at noon", "a pyramid in the desert at sunset"),
]
SEEDS = (1, 2)


@dataclass
class Run:
    """One rendered transition and what it cost."""

    ts: list[float]
    images: list[Any]
    seconds: float
    unet_items: int
    probe_frames: int
    plans: list[FramePlan]


def plan(snapshot: RenderSnapshot, engine: Engine) -> tuple[list[FramePlan], int]:
    """The frames a worker would render for this snapshot: the services' planner (services.noise_paths.plan),
    after the probe pass when the spacing needs one."""
    warp, times, probes = None, None, 0
    if snapshot.spacing in PROBED_SPACINGS:
        placement = place(engine, snapshot)
        warp, times, probes = placement.warp, placement.times, placement.probe_frames
    return noise_paths.plan(snapshot, times, spacing=warp), probes


def render(engine: Engine, snapshot: RenderSnapshot) -> Run:
    """Plan and render a whole transition in batches, in the worker's order (anchors first)."""
    started = time.perf_counter()
    plans, probes = plan(snapshot, engine)
    keys = frame_keys(snapshot.pixels(), plans, snapshot.model_revision)
    order = render_order(len(plans))
    order = [i for i in order if plans[i].start_step == 0] + [i for i in order if plans[i].start_step > 0]
    groups: dict[str, list[int]] = {}
    for index in order:
        groups.setdefault(keys[index], []).append(index)
    listed = list(groups.values())
    by_index = {p.index: p for p in plans}
    images: dict[int, Any] = {}
    items = 0
    k = shared_step(snapshot)
    for start in range(0, len(listed), snapshot.batch_size):
        batch = [i for group in listed[start : start + snapshot.batch_size] for i in group]
        frames = [by_index[i] for i in batch]
        requests = requests_for(frames, by_index)
        rendered = engine.render(snapshot.pixels(), requests, keep_latents_at=[k] if k else [])
        items += engine.last_stats.unet_items
        images.update(zip(batch, rendered, strict=True))
    seconds = time.perf_counter() - started
    return Run(
        ts=[p.t for p in plans],
        images=[images[p.index] for p in plans],
        seconds=seconds,
        unet_items=items,
        probe_frames=probes,
        plans=plans,
    )


def pixel_arrays(images: Sequence[Any]) -> list[np.ndarray]:
    return [np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0 for image in images]


def adjacent(images: Sequence[Any]) -> tuple[list[float], list[float]]:
    """(RMS pixel distance, L2 pixel distance) of each adjacent pair; repeated frames (holds) count once."""
    arrays = pixel_arrays(images)
    rms, l2 = [], []
    for a, b in zip(arrays, arrays[1:], strict=False):
        if np.array_equal(a, b):
            continue
        diff = a - b
        rms.append(float(np.sqrt(np.mean(diff**2))))
        l2.append(float(np.sqrt(np.sum(diff**2))))
    return rms, l2


def quality(images: Sequence[Any]) -> dict[str, float]:
    rms, l2 = adjacent(images)
    return {
        "smoothness": metrics.smoothness(rms),
        "max_jump": metrics.max_jump(rms),
        "mean_jump": metrics.consistency(rms),
        "ppl": metrics.ppl(rms),
        "pdv": metrics.pdv(rms),
        "istd": metrics.istd(l2),
    }


def args_snapshot(
    pair: tuple[str, str], model: str, args: argparse.Namespace, **settings: Any
) -> RenderSnapshot:
    """snapshot_for with the command line's frames, steps, size and batch size."""
    return snapshot_for(
        pair,
        model=model,
        frames=args.frames,
        steps=args.steps,
        size=args.size,
        batch_size=args.batch_size,
        **settings,
    )


def snapshot_for(
    pair: tuple[str, str],
    *,
    model: str,
    frames: int,
    steps: int,
    size: int,
    batch_size: int,
    seeds: tuple[int, int] = SEEDS,
    **settings: Any,
) -> RenderSnapshot:
    return RenderSnapshot.model_validate(
        {
            "model": model,
            "seed": seeds[0],
            "steps": steps,
            "guidance_scale": 7.5,
            "width": size,
            "height": size,
            "frames": frames,
            "batch_size": batch_size,
            "keyframes": [
                {"position": 0.0, "prompt": pair[0], "seed": seeds[0]},
                {"position": 1.0, "prompt": pair[1], "seed": seeds[1]},
            ],
            **settings,
        }
    )


def markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def engine_for(model: str, device: str) -> Engine:
    from infra.config import get_settings

    return get_engine(model, models_dir=get_settings().models_folder, device=device)


def sharing(engine: Engine, model: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Trajectory sharing against full rendering of the same frames (uniform spacing, one seed pair).

    Per k: wall time (median of --repeats, runs interleaved), U-Net evaluations, the saving per
    in-between (k / steps), smoothness and max jump, and how far each shared in-between lies from the
    full render of the same frame (mean absolute pixel difference, 0..255).
    """
    ks = [0, *args.ks]
    results: dict[int, list[tuple[Run, dict[str, float]]]] = {k: [] for k in ks}
    times: dict[int, list[float]] = {k: [] for k in ks}
    for pair in PAIRS[: args.pairs]:
        for repeat in range(args.repeats):
            for k in ks:
                snapshot = args_snapshot(
                    pair,
                    model,
                    args,
                    in_between="shared" if k else "full",
                    shared_from_step=k or None,
                )
                engine._latents.clear()  # every run pays for its own anchors
                run = render(engine, snapshot)
                times[k].append(run.seconds)
                if repeat == 0:
                    results[k].append((run, quality(run.images)))
    rows: list[dict[str, Any]] = []
    for k in ks:
        runs = results[k]
        gaps = []
        for (run, _), (full, _) in zip(runs, results[0], strict=True):
            for plan, image, reference in zip(run.plans, run.images, full.images, strict=True):
                if plan.start_step:
                    a = np.asarray(image.convert("RGB"), dtype=np.float64)
                    b = np.asarray(reference.convert("RGB"), dtype=np.float64)
                    gaps.append(float(np.abs(a - b).mean()))
        in_betweens = sum(1 for p in runs[0][0].plans if p.start_step)
        mean = {key: sum(q[key] for _, q in runs) / len(runs) for key in ("smoothness", "max_jump", "istd")}
        rows.append(
            {
                "in_between": f"shared k={k}" if k else "full",
                "in_betweens": in_betweens,
                "saved_per_in_between": round(k / args.steps, 3),
                "unet_items": sum(r.unet_items for r, _ in runs) / len(runs),
                "seconds_median": round(sorted(times[k])[len(times[k]) // 2], 3),
                **{key: round(v, 4) for key, v in mean.items()},
                "vs_full_pixels": round(sum(gaps) / len(gaps), 2) if gaps else 0.0,
            }
        )
    base = rows[0]
    for row in rows:
        row["unet_vs_full"] = round(row["unet_items"] / base["unet_items"], 3)
        row["speedup"] = round(base["seconds_median"] / row["seconds_median"], 3)
    return rows


def first_uncond(engine: Engine, model: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The first step's unconditional branch once per batch (one noise latent) against once per frame."""
    snapshot = args_snapshot(
        PAIRS[0],
        model,
        args,
        seeds=(SEEDS[0], SEEDS[0]),
    )
    seen: dict[bool, tuple[int, list[float]]] = {}
    for shared in (False, True) * args.repeats:
        engine.share_first_uncond = shared
        run = render(engine, snapshot)
        seen.setdefault(shared, (run.unet_items, []))[1].append(run.seconds)
    engine.share_first_uncond = True
    return [
        {
            "first_uncond": "once per batch" if shared else "per frame",
            "unet_items": seen[shared][0],
            "seconds_best": round(min(seen[shared][1]), 3),
        }
        for shared in (False, True)
    ]


def world_pairs(n: int, seed: int = 19) -> list[tuple[str, str]]:
    """n prompt pairs of Segue-mini's world: two random scenes' captions each, from a fixed seed."""
    from training.world import caption, sample_scene

    rng = random.Random(seed)
    pairs = []
    while len(pairs) < n:
        a, b = caption(sample_scene(rng), rng), caption(sample_scene(rng), rng)
        if a != b:
            pairs.append((a, b))
    return pairs


#: The methods of the attention study: (name, text interpolation, attention interpolation).
ATTENTION_METHODS = (
    ("lerp", "lerp", "none"),
    ("slerp", "slerp", "none"),
    ("inner", "lerp", "inner"),
    ("outer", "lerp", "outer"),
    ("fused", "lerp", "fused"),
)


def attention_study(engine: Engine, model: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every method of ATTENTION_METHODS with uniform and Beta spacing on `args.pairs` world pairs."""
    from engine.scorers import ClipScorer, clip_location

    scorer = ClipScorer(clip_location(engine.folder, ""), device=engine.device)
    pairs = world_pairs(args.pairs)
    spacings = args.spacing_kinds
    methods = [m for m in ATTENTION_METHODS if m[0] in args.methods]
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for number, pair in enumerate(pairs):
        seed = 100 + number
        base = args_snapshot(
            pair,
            model,
            args,
            seeds=(seed, seed),
            attention_steps=args.attention_steps,
        )
        pixels = base.pixels()
        alone = [engine.render(pixels, [FrameRequest(p, p, 0.0, seed_a=seed, seed_b=seed)])[0] for p in pair]
        ends = pixel_arrays(alone)
        for name, text, mode in methods:
            for spacing_name in spacings:
                snapshot = base.model_copy(
                    update={
                        "text_interpolation": text,
                        "attention_interpolation": mode,
                        "spacing": spacing_name,
                        "spacing_budget": args.frames if spacing_name == "beta" else None,
                    }
                )
                run = render(engine, snapshot)
                rms, _ = adjacent(run.images)
                scores = scorer.score(run.images, [(p.prompt_a, p.prompt_b) for p in run.plans])
                clip = metrics.adjacent_distances([v.embedding.tolist() for v in scores])
                first, last = pixel_arrays([run.images[0], run.images[-1]])
                fidelity = max(
                    float(np.sqrt(np.mean((first - ends[0]) ** 2))),
                    float(np.sqrt(np.mean((last - ends[1]) ** 2))),
                )
                results.setdefault((name, spacing_name), []).append(
                    {
                        "smooth_px": metrics.smoothness(rms),
                        "mean_px": metrics.consistency(rms),
                        "smooth_clip": metrics.smoothness(clip),
                        "mean_clip": metrics.consistency(clip),
                        "end_rms": fidelity,
                        "s_per_frame": run.seconds / len(run.images),
                        "unet_per_frame": run.unet_items / len(run.images),
                    }
                )
        print(f"  pair {number + 1}/{len(pairs)} done: {pair[0]!r} -> {pair[1]!r}", flush=True)
    rows = []
    baseline = results.get(("lerp", "uniform")) or next(iter(results.values()))
    base_time = statistics.median(r["s_per_frame"] for r in baseline)
    for (name, spacing_name), runs in results.items():

        def med(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        def mean(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.fmean(r[key] for r in runs)

        rows.append(
            {
                "method": name,
                "spacing": spacing_name,
                "smooth_px_median": round(med("smooth_px"), 4),
                "smooth_px_mean": round(mean("smooth_px"), 4),
                "mean_adjacent_px": round(mean("mean_px"), 4),
                "smooth_clip_median": round(med("smooth_clip"), 4),
                "mean_adjacent_clip": round(mean("mean_clip"), 4),
                "endpoint_rms_max": round(max(r["end_rms"] for r in runs), 4),
                "s_per_frame": round(med("s_per_frame"), 3),
                "time_vs_lerp": round(med("s_per_frame") / base_time, 2),
                "unet_items_per_frame": round(mean("unet_per_frame"), 1),
            }
        )
    return rows


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two RGB pictures in [0, 1] on their luminance (engine/fidelity.py's windowed SSIM)."""
    luma = np.array([0.299, 0.587, 0.114])
    return fidelity.ssim(a @ luma, b @ luma)


def image_study(
    engine: Engine, model: str, args: argparse.Namespace, refine: int = 0
) -> list[list[dict[str, Any]]]:
    """Inversion accuracy (with `refine` fixed-point iterations a step) and, without --refine, morph
    quality on `args.pairs` pairs of pictures the model made."""
    from engine.morph import Picture
    from engine.noise import noise_between
    from engine.sampling import decode

    inverter = engine.inverter
    side = args.size // engine.pipe.vae_scale_factor
    shape = (1, engine.pipe.unet.config.in_channels, side, side)
    inversion: dict[float, list[tuple[float, float]]] = {1.0: [], 7.5: []}
    latent_rows: list[tuple[float, float]] = []
    morphs: dict[str, list[dict[str, float]]] = {}
    ts = [i / (args.frames - 1) for i in range(args.frames)]
    for number, pair in enumerate(world_pairs(args.pairs, seed=21)):
        seeds = (200 + 2 * number, 201 + 2 * number)
        pictures: dict[float, list[Any]] = {}
        for guidance in inversion:
            params = RenderSnapshot.model_validate(
                {"model": model, "seed": seeds[0], "steps": args.steps, "guidance_scale": guidance,
                 "width": args.size, "height": args.size, "scheduler": "ddim",
                 "keyframes": [{"position": 0.0, "prompt": pair[0]}, {"position": 1.0, "prompt": pair[1]}]}
            ).pixels()  # fmt: skip
            made = engine.render(
                params,
                [FrameRequest(p, p, 0.0, seed_a=s, seed_b=s) for p, s in zip(pair, seeds, strict=True)],
            )
            pictures[guidance] = made
            for prompt, seed, image in zip(pair, seeds, made, strict=True):
                picture = Picture(image, prompt)
                found = inverter.invert(picture, args.size, args.size, args.steps, refine=refine)
                true = noise_between(seed, seed, 0.0, "slerp", shape)
                cosine = float(torch.nn.functional.cosine_similarity(found.flatten(), true.flatten(), dim=0))
                # The reconstruction: the found noise sampled back (the studio's morph at t = 0).
                cond = engine.encode([prompt])[prompt]
                with torch.inference_mode():
                    (rebuilt,) = decode(engine.pipe, inverter.sample(found, cond, args.steps))
                inversion[guidance].append((cosine, ssim(*pixel_arrays([image, rebuilt]))))
            if guidance == 1.0:  # on latents alone: sample the true noise, invert, compare
                for prompt, seed in zip(pair, seeds, strict=True):
                    cond = engine.encode([prompt])[prompt]
                    true = noise_between(seed, seed, 0.0, "slerp", shape).to(engine.device, engine.dtype)
                    made_latents = inverter.sample(true, cond, args.steps)
                    found = inverter.invert_latents(made_latents, prompt, args.steps, refine)
                    again = inverter.sample(found, cond, args.steps)
                    latent_rows.append(
                        (
                            float(
                                torch.nn.functional.cosine_similarity(found.flatten(), true.flatten(), dim=0)
                            ),
                            float((again - made_latents).norm() / made_latents.norm()),
                        )
                    )
        if args.refine:
            print(f"  pair {number + 1}/{args.pairs} inverted", flush=True)
            continue
        a, b = (Picture(image, prompt) for image, prompt in zip(pictures[1.0], pair, strict=True))
        for mode in ("none", "inner", "outer", "fused"):
            started = time.perf_counter()
            frames = inverter.morph(
                a, b, ts, width=args.size, height=args.size, steps=args.steps, attention_mode=mode,
                attention_steps=args.attention_steps,
            )  # fmt: skip
            seconds = time.perf_counter() - started
            rms, _ = adjacent(frames)
            morphs.setdefault(mode, []).append(
                {"ppl": metrics.ppl(rms), "pdv": metrics.pdv(rms), "smooth": metrics.smoothness(rms),
                 "s_per_frame": seconds / len(ts)}
            )  # fmt: skip
        print(f"  pair {number + 1}/{args.pairs} done: {pair[0]!r} -> {pair[1]!r}", flush=True)
    accuracy: list[dict[str, Any]] = [
        {
            "pictures_made_at_guidance": guidance,
            "pictures": len(values),
            "noise_cosine_median": round(statistics.median(c for c, _ in values), 3),
            "noise_cosine_min": round(min(c for c, _ in values), 3),
            "ssim_median": round(statistics.median(s for _, s in values), 3),
            "ssim_min": round(min(s for _, s in values), 3),
        }
        for guidance, values in inversion.items()
    ]
    accuracy.append(
        {
            "pictures_made_at_guidance": "latents, no VAE (1)",
            "pictures": len(latent_rows),
            "noise_cosine_median": round(statistics.median(c for c, _ in latent_rows), 3),
            "noise_cosine_min": round(min(c for c, _ in latent_rows), 3),
            "ssim_median": f"resampled rel. error {statistics.median(e for _, e in latent_rows):.4f}",
            "ssim_min": f"max {max(e for _, e in latent_rows):.4f}",
        }
    )
    quality_rows = [
        {
            "morph": "AdaIN slerp" + ("" if mode == "none" else f" + {mode} attention"),
            "ppl_mean": round(statistics.fmean(r["ppl"] for r in runs), 4),
            "pdv_mean": round(statistics.fmean(r["pdv"] for r in runs), 5),
            "smooth_median": round(statistics.median(r["smooth"] for r in runs), 4),
            "s_per_frame": round(statistics.median(r["s_per_frame"] for r in runs), 3),
        }
        for mode, runs in morphs.items()
    ]
    return [accuracy, quality_rows]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="default: SEGUE_MODEL")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--paths", nargs="+", default=["linear", "normalized", "slerp", "translate"])
    parser.add_argument("--spacings", nargs="+", default=["uniform", "ease_in_out", "perceptual", "adaptive"])
    parser.add_argument("--in-between", nargs="+", default=["full", "shared"], dest="in_between")
    parser.add_argument("--shared-from-step", type=int, default=None)
    parser.add_argument("--pairs", type=int, default=len(PAIRS), help="how many of the fixed prompt pairs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--csv", type=Path, default=Path("bench/results/methods.csv"))
    parser.add_argument(
        "--sharing",
        action="store_true",
        help="instead: trajectory sharing vs full, and the first-step saving",
    )
    parser.add_argument("--ks", type=int, nargs="+", default=[5, 10, 15], help="shared_from_step values")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--attention",
        action="store_true",
        help="instead: text blends against attention interpolation on Segue-mini's world",
    )
    parser.add_argument("--attention-steps", type=float, default=0.5)
    parser.add_argument("--images", action="store_true", help="instead: image endpoints (inversion, morphs)")
    parser.add_argument("--refine", type=int, default=0, help="--images: fixed-point iterations per step")
    parser.add_argument(
        "--methods", nargs="+", default=[m[0] for m in ATTENTION_METHODS], help="of the attention study"
    )
    parser.add_argument("--spacing-kinds", nargs="+", default=["uniform", "beta"], dest="spacing_kinds")
    args = parser.parse_args()

    from infra.config import get_settings

    model = args.model or get_settings().model
    engine = engine_for(model, args.device)
    warm = snapshot_for(PAIRS[0], model=model, frames=2, steps=2, size=args.size, batch_size=2)
    render(engine, warm)
    print(f"model {model} on {engine.device} ({engine.dtype}), torch threads {torch.get_num_threads()}")
    size = f"{args.size}x{args.size}"
    seeds = "fixed seeds per pair" if args.attention or args.images else f"seeds {SEEDS}"
    print(f"{args.frames} frames, {args.steps} steps, {size}, batch {args.batch_size}, {seeds}")
    if args.images:
        if args.refine:  # side by side: plain inversion, then refined
            for refine in (0, args.refine):
                accuracy, _ = image_study(engine, model, args, refine)
                print(f"\n### DDIM inversion, {args.steps} steps, {refine} fixed-point iterations a step\n")
                print(markdown(accuracy, list(accuracy[0])))
                write_csv(args.csv.with_name(f"inversion-refine{refine}.csv"), accuracy)
            return
        accuracy, quality_rows = image_study(engine, model, args)
        print(f"\n### DDIM inversion ({args.steps} steps, guidance 1) of pictures from known seeds\n")
        print(markdown(accuracy, list(accuracy[0])))
        print(f"\n### Morphs between {args.pairs} pairs of those pictures ({args.frames} frames)\n")
        print(markdown(quality_rows, list(quality_rows[0])))
        write_csv(args.csv.with_name("inversion.csv"), accuracy)
        write_csv(args.csv.with_name("morphs.csv"), quality_rows)
        return
    if args.attention:
        table = attention_study(engine, model, args)
        print(f"\n### Attention interpolation on {args.pairs} world pairs (medians and means over pairs)\n")
        print(markdown(table, list(table[0])))
        write_csv(args.csv, table)
        print(f"\nwritten {args.csv}")
        return
    if args.sharing:
        table = sharing(engine, model, args)
        print("\n### Trajectory sharing against full frames\n")
        print(markdown(table, list(table[0])))
        write_csv(args.csv.with_name("sharing.csv"), table)
        uncond = first_uncond(engine, model, args)
        print("\n### The first step's unconditional branch\n")
        print(markdown(uncond, list(uncond[0])))
        write_csv(args.csv.with_name("first_uncond.csv"), uncond)
        print(f"\nwritten {args.csv.with_name('sharing.csv')} and {args.csv.with_name('first_uncond.csv')}")
        return
    rows: list[dict[str, Any]] = []
    for path in args.paths:
        for spacing in args.spacings:
            for in_between in args.in_between:
                per_pair = []
                for pair in PAIRS[: args.pairs]:
                    snapshot = args_snapshot(
                        pair,
                        model,
                        args,
                        noise_interpolation=path,
                        spacing=spacing,
                        in_between=in_between,
                        shared_from_step=args.shared_from_step,
                    )
                    run = render(engine, snapshot)
                    per_pair.append({**quality(run.images), "run": run})
                mean = {k: sum(p[k] for p in per_pair) / len(per_pair) for k in per_pair[0] if k != "run"}
                runs = [p["run"] for p in per_pair]
                rows.append(
                    {
                        "path": path,
                        "spacing": spacing,
                        "in_between": in_between,
                        **{k: round(v, 5) for k, v in mean.items()},
                        "frames": sum(len(r.ts) for r in runs) / len(runs),
                        "probe_frames": sum(r.probe_frames for r in runs) / len(runs),
                        "unet_items": sum(r.unet_items for r in runs) / len(runs),
                        "seconds": round(sum(r.seconds for r in runs) / len(runs), 3),
                    }
                )
                print(f"  {path:>10} {spacing:>11} {in_between:>6}: {rows[-1]['seconds']:.1f} s", flush=True)
    columns = list(rows[0])
    print()
    print(markdown(rows, columns))
    write_csv(args.csv, rows)
    print(f"\nwritten {args.csv} (means over {args.pairs} prompt pairs)")
    if math.isnan(rows[0]["smoothness"]):
        raise SystemExit("no metrics")


if __name__ == "__main__":
    main()
