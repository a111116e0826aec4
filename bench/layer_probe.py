"""Which U-Net layers see like people? Odd-one-out accuracy of every block, noise level and prompt.

Reproduces the human-alignment study's probe on a Segue model: each image is VAE-encoded, noised at
t = 50, 200, 500, 800 (of 1000), and run once through the U-Net with the empty prompt and with its own
prompt; every down block, the mid block and every up block is mean-pooled over space
(engine/layer_features.py). For each triplet the odd one is the item whose summed cosine distance to the
other two is largest (core/odd_one_out.py); the table gives the share of triplets where that is the
ground truth's (or the person's) odd one, with the mini CLIP's image embedding, SSIM and raw pixels as
reference rows.

Triplet sets:
- the world's (always; Segue-mini is trained on it): scenes drawn by training/world.py's renderer with one
  of their captions as the prompt. "sky+ground": two scenes share sky and ground, the odd one shares only
  one of them (objects are the world's random ones, a distractor). "object": scenes drawn for the set,
  all three with the same sky and ground and one object; two hold the same kind of object (in their own
  colour and place), the odd one another kind.
- the human triplets of every study in the database (issue 24 §2), when there are any.

    python -m bench.layer_probe [--model segue-mini] [--images 240] [--triplets 300] [--record]

`--record` writes the best unconditioned block and noise level beside the model (core.registry
.layer_probe_record); the confusion map's U-Net scorer reads it from then on. Re-run with --record to
re-probe (after a fine-tune the record's revision no longer matches and the scorer falls back).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from core import odd_one_out
from core.odd_one_out import Triplet
from engine.layer_features import STUDY_TIMESTEPS, Reading

#: A person's triplet answer: three frames (PNG bytes or images) and the position of the odd one,
#: optionally with the frames' prompts (for the conditioned readings; "" when unknown).
HumanTriplet = tuple[Sequence[Any], int] | tuple[Sequence[Any], int, Sequence[str]]
#: Where human triplets come from: {study name: answers} (`study_triplets` reads the database's).
TripletProvider = Callable[[], dict[str, list[HumanTriplet]]]
#: The module and function of issue 24 §2's studies that read every study's answered triplets.
STUDY_READER = ("services.studies", "probe_triplets")


@dataclass
class Pool:
    """The images features are computed for once, and the triplet sets that index them."""

    images: list[PIL.Image.Image] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    sets: dict[str, tuple[list[Triplet], list[int]]] = field(default_factory=dict)
    #: The world's scenes behind the images (training.world.Scene; none for people's frames).
    scenes: list[Any] = field(default_factory=list)


@dataclass(frozen=True, eq=False)  # rows are keys by identity (their accuracies are a dict)
class Row:
    """One line of the table: a reading (or a reference) and its accuracy on each triplet set."""

    features: str
    timestep: int | None
    conditioned: bool | None
    accuracy: dict[str, float]

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.accuracy.values())))


# ----------------------------------------------------------------------------- triplet sets
def world_pool(images: int, triplets: int, seed: int, side: int, captions: str = "full") -> Pool:
    """Scenes of Segue-mini's world with two ground-truth triplet sets (see the module docstring): half
    the images are the world's random scenes (sky+ground), half are drawn for the object set (per sky
    and ground, two scenes of each of three objects). captions="background": each prompt describes the
    scene without its objects (a control: the text cannot name the odd object)."""
    from training.world import ALLOWED, OBJ_COLOURS, POSITIONS, SKIES, Obj, Scene, caption, example, render

    pool = Pool()
    scenes = pool.scenes
    rng = random.Random(seed)

    def add(image: PIL.Image.Image, scene: Any, prompt: str) -> None:
        if captions == "background":
            bare = Scene(scene.sky, scene.ground, scene.style, scene.celestial)
            prompt = caption(bare, random.Random(len(scenes)))
        if image.width != side:
            image = image.resize((side, side), PIL.Image.Resampling.BICUBIC)
        pool.images.append(image)
        pool.prompts.append(prompt)
        scenes.append(scene)

    random_scenes = range(images - images // 2)
    for index in random_scenes:
        image, scene, texts = example(seed, index, split="any", n_captions=1)
        add(image, scene, texts[0])
    grounds = [g for g, kinds in ALLOWED.items() if len(kinds) >= 3]
    while len(scenes) + 6 <= images:
        sky, ground = rng.choice(SKIES), rng.choice(grounds)
        for kind in rng.sample(ALLOWED[ground], 3):
            for _ in range(2):
                obj = Obj(kind, rng.choice(OBJ_COLOURS[kind]), rng.choice(POSITIONS))
                scene = Scene(sky, ground, objects=[obj])
                add(render(scene, rng.randrange(2**31)), scene, caption(scene, rng))
    drawn = range(len(random_scenes), len(scenes))

    def sample(
        members: range, same: Callable[[int, int], bool], odd: Callable[[int, int], bool], name: str
    ) -> None:
        candidates = {
            (i, j): [k for k in members if odd(i, k) and odd(j, k)]
            for i in members
            for j in members
            if i < j and same(i, j)
        }
        pairs = [pair for pair, odds in candidates.items() if odds]
        made: list[Triplet] = []
        answers: list[int] = []
        for _ in range(triplets if pairs else 0):
            pair = rng.choice(pairs)
            items = [*pair, rng.choice(candidates[pair])]
            rng.shuffle(items)
            made.append((items[0], items[1], items[2]))
            answers.append(_odd_position(items, pair))
        if made:
            pool.sets[name] = (made, answers)

    def background(i: int) -> tuple[str, str]:
        return scenes[i].sky, scenes[i].ground

    # The odd scene keeps one of the pair's sky and ground and changes the other.
    sample(
        random_scenes,
        lambda i, j: background(i) == background(j),
        lambda i, k: (scenes[i].sky == scenes[k].sky) != (scenes[i].ground == scenes[k].ground),
        "world sky+ground",
    )
    # Same sky and ground for all three, so only the object tells the odd one.
    sample(
        drawn,
        lambda i, j: background(i) == background(j) and scenes[i].main == scenes[j].main,
        lambda i, k: background(i) == background(k) and scenes[i].main != scenes[k].main,
        "world object",
    )
    return pool


def _odd_position(items: list[int], pair: tuple[int, int]) -> int:
    return next(p for p, item in enumerate(items) if item not in pair)


def human_pool(studies: dict[str, list[HumanTriplet]], side: int) -> Pool:
    """People's answers as triplet sets over one pool of frames (a frame shown in many triplets once)."""
    pool = Pool()
    seen: dict[str, int] = {}

    def index(frame: Any, prompt: str) -> int:
        picture = frame if isinstance(frame, PIL.Image.Image) else PIL.Image.open(io.BytesIO(frame))
        picture = picture.convert("RGB")
        key = hashlib.sha256(picture.tobytes() + prompt.encode()).hexdigest()
        if key not in seen:
            seen[key] = len(pool.images)
            pool.images.append(picture.resize((side, side), PIL.Image.Resampling.BICUBIC))
            pool.prompts.append(prompt)
        return seen[key]

    for name, answers in studies.items():
        made: list[Triplet] = []
        odd: list[int] = []
        for answer in answers:
            frames, position = answer[0], answer[1]
            prompts = list(answer[2]) if len(answer) > 2 else ["", "", ""]  # type: ignore[misc]
            a, b, c = (index(f, p) for f, p in zip(frames, prompts, strict=True))
            made.append((a, b, c))
            odd.append(int(position))
        if made:
            pool.sets[f"study {name}"] = (made, odd)
    return pool


def study_triplets(database_url: str) -> dict[str, list[HumanTriplet]]:
    """Every study's answered triplets in the database, or {} when it has no studies (yet).

    Reads through `STUDY_READER` (services.studies.probe_triplets: a function of the database URL
    returning {study name: [(three frames, odd position[, prompts])]})."""
    from sqlalchemy import create_engine, inspect

    engine = create_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if not tables & {"study_answers", "studies"}:
        print("no studies in the database (no study tables): human triplets skipped", file=sys.stderr)
        return {}
    module, name = STUDY_READER
    try:
        reader = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        print(
            f"study tables found but no {module}.{name} to read them: human triplets skipped", file=sys.stderr
        )
        return {}
    found: dict[str, list[HumanTriplet]] = reader(database_url)
    if not found:
        print("no studies with triplet answers: human triplets skipped", file=sys.stderr)
    return found


# ----------------------------------------------------------------------------- scoring
def cosine_distances(features: np.ndarray) -> np.ndarray:
    """All pairwise cosine distances of the rows of `features`."""
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return 1.0 - unit @ unit.T


def accuracies(distance: Callable[[int, int], float], pool: Pool) -> dict[str, float]:
    """Odd-one-out accuracy of one distance on each of the pool's triplet sets."""
    return {name: odd_one_out.accuracy(distance, t, odd) for name, (t, odd) in pool.sets.items()}


def score_readings(features: dict[Reading, np.ndarray], pool: Pool) -> list[Row]:
    """Each reading's pooled features (N x C, one row per pool image) → its accuracy on every set."""
    rows = []
    for reading, matrix in features.items():
        distances = cosine_distances(np.asarray(matrix, dtype=np.float64))
        rows.append(
            Row(reading.block, reading.timestep, reading.conditioned, accuracies(_lookup(distances), pool))
        )
    return rows


def _lookup(distances: np.ndarray) -> Callable[[int, int], float]:
    return lambda i, j: float(distances[i, j])


def best_row(rows: Sequence[Row], conditioned: bool | None = None) -> Row:
    """The U-Net reading with the highest mean accuracy over the sets (only with or without text when
    asked); references (CLIP, SSIM, pixels) are never chosen."""
    return odd_one_out.best(
        {
            r: r.mean
            for r in rows
            if r.timestep is not None and (conditioned is None or r.conditioned == conditioned)
        }
    )


def merged(pools: Sequence[Pool]) -> Pool:
    """One pool of several (indices of later pools shifted), so every feature is computed in one pass."""
    out = Pool()
    for pool in pools:
        shift = len(out.images)
        out.images += pool.images
        out.prompts += pool.prompts
        for name, (triplets, odd) in pool.sets.items():
            out.sets[name] = ([(a + shift, b + shift, c + shift) for a, b, c in triplets], odd)
    return out


# ----------------------------------------------------------------------------- features
def unet_rows(engine: Any, pool: Pool, timesteps: Sequence[int], batch: int) -> list[Row]:
    from engine.layer_features import LayerFeatures

    reader = LayerFeatures(engine.pipe)
    parts: dict[Reading, list[np.ndarray]] = {}
    for start in range(0, len(pool.images), batch):
        chunk = reader.pooled(
            pool.images[start : start + batch], pool.prompts[start : start + batch], timesteps=timesteps
        )
        for reading, matrix in chunk.items():
            parts.setdefault(reading, []).append(matrix.numpy())
    rows = score_readings({r: np.concatenate(m) for r, m in parts.items()}, pool)
    order = {name: i for i, name in enumerate(reader.blocks)}
    return sorted(rows, key=lambda r: (order[r.features], r.timestep, r.conditioned))


def probe(
    engine: Any,
    provider: TripletProvider,
    *,
    world: Pool | None = None,
    timesteps: Sequence[int] = STUDY_TIMESTEPS,
    batch: int = 50,
) -> tuple[Pool, list[Row]]:
    """The table for one model: its U-Net readings and the references, on the provider's human triplets
    (and the world's set when given). Returns the pool it scored and the rows (empty: no triplets)."""
    pool = merged([*([world] if world else []), human_pool(provider(), model_side(engine))])
    if not pool.sets:
        return pool, []
    return pool, unet_rows(engine, pool, timesteps, batch) + reference_rows(engine, pool, batch)


def model_side(engine: Any) -> int:
    """The image side the model renders at (its U-Net's sample size times the VAE's downscale)."""
    scale = 2 ** (len(engine.pipe.vae.config.block_out_channels) - 1)
    return int(engine.pipe.unet.config.sample_size) * scale


def reference_rows(engine: Any, pool: Pool, batch: int) -> list[Row]:
    """The mini CLIP's image embedding (when the model has a CLIP), SSIM and raw pixels."""
    from core.scores import distance
    from engine.probe import pixel_distance, pixel_feature
    from engine.scorers import ClipScorer, SsimScorer, clip_location

    rows = []
    try:
        clip = ClipScorer(clip_location(engine.folder, ""))
        embeddings = np.concatenate(
            [
                np.stack([v.embedding for v in clip.score(chunk, [("", "")] * len(chunk))])
                for chunk in (pool.images[s : s + batch] for s in range(0, len(pool.images), batch))
            ]
        )
        distances = cosine_distances(embeddings.astype(np.float64))
        rows.append(Row("CLIP image", None, None, accuracies(_lookup(distances), pool)))
    except FileNotFoundError as exc:
        print(f"no CLIP reference row: {exc}", file=sys.stderr)
    thumbs = [v.embedding.tolist() for v in SsimScorer().score(pool.images, [("", "")] * len(pool.images))]
    rows.append(
        Row("SSIM", None, None, accuracies(lambda i, j: distance("ssim", thumbs[i], thumbs[j]), pool))
    )
    pixels = [pixel_feature(i) for i in pool.images]
    rows.append(
        Row("pixels", None, None, accuracies(lambda i, j: pixel_distance(pixels[i], pixels[j]), pool))
    )
    return rows


# ----------------------------------------------------------------------------- output
def table(rows: Sequence[Row], sets: dict[str, tuple[list[Triplet], list[int]]]) -> str:
    names = list(sets)
    head = "| features | t | text | " + " | ".join(f"{n} ({len(sets[n][0])})" for n in names) + " | mean |"
    lines = [head, "|" + "---|" * (len(names) + 4)]
    best_mean = max(r.mean for r in rows if r.timestep is not None)
    for row in rows:
        cells = " | ".join(f"{row.accuracy[n]:.3f}" for n in names)
        mean = f"{row.mean:.3f}"
        if row.timestep is not None and row.mean == best_mean:
            mean = f"**{mean}**"
        t = "-" if row.timestep is None else str(row.timestep)
        text = "-" if row.conditioned is None else ("yes" if row.conditioned else "no")
        lines.append(f"| {row.features} | {t} | {text} | {cells} | {mean} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.layer_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="segue-mini")
    parser.add_argument("--database-url", default=None, help="where studies live (default: the settings')")
    parser.add_argument("--images", type=int, default=240, help="world scenes drawn (the triplets' pool)")
    parser.add_argument("--triplets", type=int, default=300, help="triplets per world set")
    parser.add_argument("--timesteps", default="50,200,500,800", help="noise levels on a 1000-step scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-world", action="store_true", help="only the studies' human triplets")
    parser.add_argument(
        "--captions",
        choices=("full", "background"),
        default="full",
        help="the world's prompts: full captions, or the background only (the objects left unsaid)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="default: <data dir>/layer-probe/<model>.json"
    )
    parser.add_argument("--record", action="store_true", help="record the best block for the U-Net scorer")
    args = parser.parse_args(argv)

    import torch

    from core.registry import layer_probe_record, model_revision
    from engine.layer_features import BlockChoice
    from engine.pipeline import Engine
    from infra.config import get_settings

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    settings = get_settings()
    models_dir = settings.models_folder
    started = time.perf_counter()
    engine = Engine.load(args.model, device="cpu", models_dir=models_dir)
    world = (
        None
        if args.no_world
        else world_pool(args.images, args.triplets, args.seed, model_side(engine), args.captions)
    )
    database_url = args.database_url or settings.database_url
    timesteps = [int(t) for t in args.timesteps.split(",")]
    pool, rows = probe(
        engine, lambda: study_triplets(database_url), world=world, timesteps=timesteps, batch=args.batch
    )
    if not rows:
        print("no triplets to probe with (no world set and no study answers)", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started

    top, plain = best_row(rows), best_row(rows, conditioned=False)
    print(f"## Layer probe: {args.model}, {len(pool.images)} images, {seconds:.0f} s on CPU\n")
    print(table(rows, pool.sets))
    print(
        f"\nbest: {top.features} at t={top.timestep} {'with' if top.conditioned else 'without'} text "
        f"({top.mean:.3f}); best without text (the U-Net scorer's): {plain.features} at t={plain.timestep} "
        f"({plain.mean:.3f})"
    )
    revision = model_revision(args.model, models_dir)
    out = args.json or settings.data_dir / "layer-probe" / f"{args.model.replace('/', '_')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "model": args.model,
                "revision": revision,
                "captions": args.captions,
                "images": len(pool.images),
                "sets": {n: len(t) for n, (t, _) in pool.sets.items()},
                "seconds": round(seconds, 1),
                "rows": [
                    {
                        "features": r.features,
                        "timestep": r.timestep,
                        "conditioned": r.conditioned,
                        "accuracy": r.accuracy,
                        "mean": r.mean,
                    }
                    for r in rows
                ],
                "best": {"block": top.features, "timestep": top.timestep, "conditioned": top.conditioned},
            },
            indent=1,
        )
        + "\n"
    )
    print(f"table written to {out}")
    if args.record:
        record = layer_probe_record(args.model, models_dir, settings.data_dir)
        source = ", ".join(f"{n} ({len(t)})" for n, (t, _) in pool.sets.items())
        BlockChoice(plain.features, plain.timestep or 0, revision, round(plain.mean, 4), source).save(record)
        print(f"recorded {plain.features} at t={plain.timestep} for the U-Net scorer in {record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
