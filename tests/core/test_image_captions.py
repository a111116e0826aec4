"""Choosing a caption for a picture keyframe without a prompt (docs/image-endpoints.md): the chooser takes
the best-scored candidate (the first of equals), the candidates are the world's, and the stored form
round-trips."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import PIL.Image
import pytest

from engine.captions import best_caption

PLANTED = "a red boat on the sea at night"


def planted_scorer(image: PIL.Image.Image, candidates: Sequence[str]) -> np.ndarray:
    """A synthetic scorer: word overlap with the planted caption, plus a little fixed noise."""
    noise = np.random.default_rng(0).uniform(0, 0.01, len(candidates))
    wanted = set(PLANTED.split())
    return np.array([len(wanted & set(c.split())) / len(wanted | set(c.split())) for c in candidates]) + noise


def test_the_chooser_picks_the_planted_caption_among_the_worlds() -> None:
    from worker.captions import world_captions

    candidates = world_captions()
    assert PLANTED in candidates and len(set(candidates)) == len(candidates) > 300
    image = PIL.Image.new("RGB", (64, 64))
    assert best_caption(image, candidates, planted_scorer) == PLANTED
    reordered = tuple(reversed(candidates))
    assert best_caption(image, reordered, lambda i, c: planted_scorer(i, tuple(reversed(c)))[::-1]) == PLANTED


def test_equal_scores_go_to_the_first_candidate_and_no_candidates_give_the_empty_prompt() -> None:
    image = PIL.Image.new("RGB", (8, 8))
    assert best_caption(image, ["b", "a", "c"], lambda i, c: np.ones(len(c))) == "b"
    assert best_caption(image, [], lambda i, c: np.ones(0)) == ""
    with pytest.raises(ValueError, match="expected 2 scores"):
        best_caption(image, ["a", "b"], lambda i, c: np.ones(3))


def test_a_caption_round_trips_through_its_png_and_its_key_depends_on_image_and_revision() -> None:
    from infra.storage import KEY_PATTERN
    from services.image_captions import caption_key, caption_png, png_caption

    assert png_caption(caption_png("a café at night")) == "a café at night"
    assert png_caption(caption_png("")) == ""
    assert png_caption(b"not a png") is None
    key = caption_key("a" * 64, "rev1")
    assert KEY_PATTERN.match(key)
    assert key != caption_key("a" * 64, "rev2") and key != caption_key("b" * 64, "rev1")
    assert key == caption_key("a" * 64, "rev1")
