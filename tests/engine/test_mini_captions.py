"""Segue-mini's own CLIP captions pictures of its world with the scene they show (docs/image-endpoints.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "models" / "segue-mini" / "clip"


@pytest.mark.skipif(not (CLIP / "config.json").is_file(), reason="Segue-mini's CLIP is not in models/")
@pytest.mark.parametrize(
    ("sky", "ground", "style", "kind", "colour", "expected"),
    [
        ("night", "sea", None, "boat", "red", "a red boat on the sea at night"),
        ("day", "desert", None, "pyramid", None, "a pyramid in a desert during the day"),
        ("day", "meadow", None, "dog", "brown", "a brown dog in a meadow during the day"),
    ],
)
def test_the_mini_clip_captions_a_world_picture_with_its_scene(
    sky: str, ground: str, style: str | None, kind: str, colour: str | None, expected: str
) -> None:
    from engine.captions import best_caption, clip_scores
    from engine.scorers import ClipScorer
    from training import world
    from worker.captions import world_captions

    scene = world.Scene(sky, ground, style, None, [world.Obj(kind, colour, "center")])
    scorer = ClipScorer(str(CLIP))
    captions = world_captions()
    chosen = best_caption(world.render(scene, seed=1), captions, clip_scores(scorer))
    assert chosen == expected
    assert best_caption(world.render(scene, seed=1), captions, clip_scores(scorer)) == chosen  # deterministic
