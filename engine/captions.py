"""A caption for a picture, chosen from candidate texts by a CLIP (docs/image-endpoints.md).

A picture keyframe without a prompt still needs a text condition for its inversion and for the text
embeddings its segments interpolate. With a CLIP that has an image tower (Segue-mini ships one), every
candidate caption is scored by the cosine of its text features with the picture's image features and the
best one is taken; ties go to the earlier candidate, so the choice is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import PIL.Image

#: Scores of candidate captions for one picture (higher: a better description).
CaptionScores = Callable[[PIL.Image.Image, Sequence[str]], np.ndarray]


def best_caption(image: PIL.Image.Image, candidates: Sequence[str], scores: CaptionScores) -> str:
    """The candidate with the highest score (the first of equals); "" when there are no candidates."""
    if not candidates:
        return ""
    values = np.asarray(scores(image, candidates), dtype=np.float64)
    if values.shape != (len(candidates),):
        raise ValueError(f"expected {len(candidates)} scores, got shape {values.shape}")
    return candidates[int(np.argmax(values))]  # argmax returns the first maximum


def clip_scores(scorer: object) -> CaptionScores:
    """Candidate scores from a ClipScorer (engine/scorers.py): image features . text features."""

    def scores(image: PIL.Image.Image, candidates: Sequence[str]) -> np.ndarray:
        (values,) = scorer.score([image], [("", "")])  # type: ignore[attr-defined]
        texts = scorer.text_features(candidates)  # type: ignore[attr-defined]
        return np.array([float(values.embedding @ texts[c].numpy()) for c in candidates])

    return scores
