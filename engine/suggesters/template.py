"""The deterministic fallback: bridges built from the two prompts' own phrases, no model needed. Torch-free.

Each prompt is split into its scene (the words before the first "with", "in", "at", ... or comma) and its
details ("at night", "with a girl"). The bridges go from the start's scene taking on the end's details,
through a blend of both scenes, to the end's scene keeping the start's details:

    "a futuristic city at night" -> "a sunny forest with a girl"
    1. a futuristic city with a girl
    2. a futuristic city slowly turning into a sunny forest
    3. a sunny forest with traces of the futuristic city

Same two prompts and count, same suggestions, always.
"""

from __future__ import annotations

import re

from engine.suggesters.base import Suggester, Suggestions
from engine.suggesters.parse import is_copy, normalise

_SPLIT = re.compile(r",|\s(?=(?:with|in|on|at|under|during|near|beside|behind|by)\s)", re.IGNORECASE)


def split_phrase(prompt: str) -> tuple[str, list[str]]:
    """(scene, details): "a sunny forest with a girl" -> ("a sunny forest", ["with a girl"])."""
    parts = [p.strip(" .") for p in _SPLIT.split(prompt.strip()) if p and p.strip(" .")]
    if not parts:
        return prompt.strip(), []
    return parts[0], parts[1:]


def _bare(phrase: str) -> str:
    return re.sub(r"^(?:a|an|the)\s+", "", phrase.strip(), flags=re.IGNORECASE)


def _inner(phrase: str) -> str:
    """A phrase inside a sentence: its leading article in lower case ("A forest" -> "a forest")."""
    return re.sub(r"^(a|an|the)\b", lambda m: m.group(1).lower(), phrase.strip(), flags=re.IGNORECASE)


def template_bridges(start: str, end: str, count: int) -> list[str]:
    """Up to `count` bridges from `start` to `end`, ordered from near the start to near the end."""
    a_scene, a_details = split_phrase(start)
    b_scene, b_details = split_phrase(end)
    a_tail, b_tail = " ".join(a_details), " ".join(b_details)
    a_in, b_in = _inner(a_scene), _inner(b_scene)
    ordered = [  # from near the start to near the end; the middle one is the founding study's kind
        f"{a_scene} {b_tail}" if b_tail else "",
        f"{a_scene} with {b_in}",
        f"{b_scene} and {a_in}",
        f"{a_scene} slowly turning into {b_in}",
        f"{b_scene} with {a_in}",
        f"{b_scene} {a_tail}" if a_tail else "",
        f"{b_scene} with traces of the {_bare(a_scene)}",
    ]
    candidates: list[str] = []
    for text in ordered:
        text = re.sub(r"\s+", " ", text).strip()
        if (
            not text
            or is_copy(text, [start, end])
            or any(normalise(text) == normalise(c) for c in candidates)
        ):
            continue
        candidates.append(text)
    if count >= len(candidates):
        return candidates
    # Spread the picks over the whole way (first near the start, last near the end).
    if count == 1:
        return [candidates[len(candidates) // 2]]
    picks = sorted({round(i * (len(candidates) - 1) / (count - 1)) for i in range(count)})
    return [candidates[i] for i in picks]


class TemplateSuggester(Suggester):
    """The Suggester that needs no model (see the module docstring)."""

    name = "template"
    label = "templates (no language model)"

    def suggest(self, start: str, end: str, count: int, seed: int = 0) -> Suggestions:
        return Suggestions(template_bridges(start, end, count))
