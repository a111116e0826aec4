"""Does MoCE help Segue-mini with the concepts its world taught it to mix up?

Segue-mini's world has deliberate co-occurrence biases (training/world.py): boats only on water,
pyramids only in the desert and only sand coloured, houses never in deserts or cities. Each pair below
combines two concepts the model never saw together. For every pair:

1. plain prompting: 20 seeds of the full prompt; the world's attribute classifier (training/evaluate.py)
   says whether each concept is in the image; the easily lost concept A is the one missing more often;
2. MoCE: the switch step N is found by binary search (core.moce) on the Multi-Concept Disparity,
   measured with the mini CLIP on 4 probe seeds; then 20 seeds denoise N steps with A alone and the rest
   with the full prompt (the engine's switch step);
3. the rate of images showing BOTH concepts, plain vs MoCE.

    python -m training.moce_study [--seeds 20] [--steps 25]     # prints a Markdown table, writes CSV
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.moce import concept_score, search_switch_step
from core.params import PixelSettings
from core.registry import MINI_MODEL, SHIPPED_MODELS_DIR
from engine.pipeline import Engine, FrameRequest
from engine.scorers import ClipScorer
from training import common, evaluate, world

OBJECT_WORDS = {
    "boat": "a boat",
    "pyramid": "a pyramid",
    "house": "a house",
    "girl": "a girl",
    "dog": "a dog",
}
GROUND_WORDS = {
    "desert": "a desert",
    "city": "a city",
    "forest": "a forest",
    "snow": "a snowy field",
    "mountains": "mountains",
    "meadow": "a meadow",
    "sea": "the sea",
    "beach": "a beach",
}
DESCRIPTIONS = {
    "boat": "a small sailboat with a white sail",
    "pyramid": "a great stone pyramid with a pointed top",
    "house": "a small house with a roof and a door",
    "girl": "a young girl standing",
    "dog": "a small dog",
    "desert": "sand dunes under the sky",
    "city": "tall buildings of a city",
    "forest": "green trees of a forest",
    "snow": "white snow covering the ground",
    "mountains": "rocky mountains",
    "meadow": "green grass of a meadow",
    "sea": "blue water of the sea",
    "beach": "sand by the water",
}


@dataclass(frozen=True)
class Concept:
    kind: str  # "object" or "ground"
    name: str

    @property
    def words(self) -> str:
        return OBJECT_WORDS[self.name] if self.kind == "object" else GROUND_WORDS[self.name]

    def present(self, ground: np.ndarray, objects: np.ndarray) -> np.ndarray:
        if self.kind == "object":
            return objects[:, world.OBJECTS.index(self.name)] > 0.5
        return ground == world.GROUNDS.index(self.name)


@dataclass(frozen=True)
class Pair:
    one: Concept
    two: Concept
    prompt: str


def held_out_pairs() -> list[Pair]:
    """Concept pairs the world never draws together: objects on grounds it never puts them on
    (ALLOWED in training/world.py), and objects that never share a scene (boats live on water,
    pyramids in the desert, houses never there)."""
    where = {
        "sea": "on the sea",
        "snow": "in a snowy field",
        "mountains": "in the mountains",
        "city": "in a city",
    }
    pairs = [
        Pair(
            Concept("object", obj),
            Concept("ground", ground),
            f"{OBJECT_WORDS[obj]} {where.get(ground, f'in the {ground}')}",
        )
        for obj in ("boat", "pyramid", "house", "girl", "dog")
        for ground in world.GROUNDS
        if obj not in world.ALLOWED[ground] and not (obj in ("girl", "dog") and ground != "sea")
    ]
    pairs += [
        Pair(Concept("object", "boat"), Concept("object", "pyramid"), "a boat and a pyramid"),
        Pair(Concept("object", "house"), Concept("object", "pyramid"), "a house and a pyramid"),
    ]
    return pairs


def render(engine: Engine, prompt_a: str, full: str, seeds: list[int], switch: int, steps: int) -> list:
    images = []
    for seed in seeds:  # one seed per call: each frame's noise comes from the render's seed
        settings = PixelSettings(model=MINI_MODEL, seed=seed, steps=steps, width=64, height=64)
        frame = FrameRequest(prompt_a, full, 1.0, switch_step=switch if switch > 0 else None)
        images.extend(engine.render(settings, [frame]))
    return images


def presence(net, images, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    arrays = np.stack([np.asarray(i.convert("RGB")) for i in images])
    _, ground, objects, _, _ = evaluate.classify(net, arrays)
    return pair.one.present(ground, objects), pair.two.present(ground, objects)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--probe-seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--threshold", type=float, default=1.0, help="|D| in CLIPScore points")
    parser.add_argument("--out", type=Path, default=common.DATA / "moce_study.csv")
    args = parser.parse_args()
    torch.manual_seed(0)
    started = time.time()
    engine = Engine.load(MINI_MODEL, device="cpu")
    clip = ClipScorer(str(Path(SHIPPED_MODELS_DIR) / MINI_MODEL / "clip"))
    net = evaluate.train_classifier()
    seeds = list(range(1000, 1000 + args.seeds))
    probe_seeds = list(range(2000, 2000 + args.probe_seeds))
    rows = []
    for pair in held_out_pairs():
        plain = render(engine, pair.prompt, pair.prompt, seeds, 0, args.steps)
        has_one, has_two = presence(net, plain, pair)
        # The easily lost concept goes first.
        first, second = (pair.one, pair.two) if has_one.mean() <= has_two.mean() else (pair.two, pair.one)

        def disparity(n: int, first: Concept = first, second: Concept = second, pair: Pair = pair) -> float:
            images = render(engine, first.words, pair.prompt, probe_seeds, n, args.steps)
            values = []
            for image in images:
                plain_words = clip.score([image], [(first.words, second.words)])[0]
                described = clip.score([image], [(DESCRIPTIONS[first.name], DESCRIPTIONS[second.name])])[0]
                a = concept_score([plain_words.sim_a or 0.0, described.sim_a or 0.0])
                b = concept_score([plain_words.sim_b or 0.0, described.sim_b or 0.0])
                values.append(a - b)
            return float(np.mean(values))

        search = search_switch_step(disparity, args.steps, args.threshold)
        moce = render(engine, first.words, pair.prompt, seeds, search.step, args.steps)
        m_one, m_two = presence(net, moce, pair)
        row = {
            "prompt": pair.prompt,
            "first": first.name,
            "switch_step": search.step,
            "probes": len(search.trace),
            "disparity": round(search.disparity, 2),
            f"plain_{pair.one.kind}": 0,
            "plain_one": has_one.mean(),
            "plain_two": has_two.mean(),
            "plain_both": (has_one & has_two).mean(),
            "moce_one": m_one.mean(),
            "moce_two": m_two.mean(),
            "moce_both": (m_one & m_two).mean(),
            "trace": " ".join(f"{p.step}:{p.disparity:+.1f}" for p in search.trace),
        }
        row.pop(f"plain_{pair.one.kind}")
        rows.append(row)
        print(row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(
        f"\n{len(rows)} held-out concept pairs, {args.seeds} seeds each, {args.steps} steps "
        f"({time.time() - started:.0f} s)\n"
    )
    print("| prompt | A (first) | N (probes) | plain: 1st / 2nd concept / both | MoCE: 1st / 2nd / both |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['prompt']} | {r['first']} | {r['switch_step']} ({r['probes']}) | {r['plain_one']:.0%} / "
            f"{r['plain_two']:.0%} / **{r['plain_both']:.0%}** | {r['moce_one']:.0%} / "
            f"{r['moce_two']:.0%} / **{r['moce_both']:.0%}** |"
        )
    plain_both = np.mean([r["plain_both"] for r in rows])
    moce_both = np.mean([r["moce_both"] for r in rows])
    print(f"| **all {len(rows)} pairs** | | | **{plain_both:.2%}** both | **{moce_both:.2%}** both |")


if __name__ == "__main__":
    main()
