"""How well Segue-mini's CLIP captions pictures of its world (docs/image-endpoints.md, "Captions").

Draws `--scenes` random scenes of the world (fixed seed), captions each picture as the worker does
(worker/captions.py: the best of the world's captions by the mini CLIP) and counts how often the caption
names the scene's sky, ground and main object (or none), with the seconds of the first caption (the text
features of every candidate) and of the next ones.

    python -m bench.captions [--scenes 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clip", default=str(REPO / "models" / "segue-mini" / "clip"))
    args = parser.parse_args()

    import torch

    from engine.captions import best_caption, clip_scores
    from engine.scorers import ClipScorer
    from training import world
    from worker.captions import world_captions

    torch.set_num_threads(1)
    scores = clip_scores(ClipScorer(args.clip))
    candidates = world_captions()
    rng = random.Random(args.seed)
    hits = {"the sky": 0, "the ground": 0, "the main object": 0, "all three at once": 0}
    seconds: list[float] = []
    for index in range(args.scenes):
        scene = world.sample_scene(rng, "any")
        picture = world.render(scene, seed=index)
        started = time.perf_counter()
        parsed = world.parse(best_caption(picture, candidates, scores))
        seconds.append(time.perf_counter() - started)
        objects = parsed.get("objects") or []
        right = {
            "the sky": parsed.get("sky") == scene.sky,
            "the ground": parsed.get("ground") == scene.ground,
            "the main object": (objects[0]["kind"] if objects else None) == scene.main,
        }
        right["all three at once"] = all(right.values())
        for name, ok in right.items():
            hits[name] += ok
    print(
        f"{args.scenes} random scenes of Segue-mini's world (seed {args.seed}), {len(candidates)} candidates"
    )
    for name, count in hits.items():
        print(f"  caption names {name:<18} {count:>3}/{args.scenes}")
    later = sorted(seconds[1:])
    print(f"  seconds: first caption {seconds[0]:.2f}, then median {later[len(later) // 2]:.3f}")


if __name__ == "__main__":
    main()
