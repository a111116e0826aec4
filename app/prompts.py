"""Prompt length against the text encoder's window, using the model's own tokenizer (no torch needed)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from app.config import get_settings
from worker.engine.registry import model_location

#: CLIP text encoders read 77 tokens, two of which are the start and end markers.
CLIP_WINDOW = 77


@lru_cache(maxsize=8)
def _tokenizer(location: str) -> Any | None:
    try:
        from transformers import CLIPTokenizer

        return CLIPTokenizer.from_pretrained(location, subfolder="tokenizer", local_files_only=True)
    except Exception:  # not downloaded yet, not built yet, or not a CLIP model: no warning then
        return None


def prompt_warning(field: str, prompt: str, model: str) -> str | None:
    """A message when the prompt runs past the encoder's window, saying what gets cut."""
    if not prompt:
        return None
    tokenizer = _tokenizer(model_location(model, get_settings().models_dir or Path("data/models")))
    if tokenizer is None:
        return None
    window = min(int(getattr(tokenizer, "model_max_length", CLIP_WINDOW) or CLIP_WINDOW), 1024)
    ids = tokenizer(prompt, truncation=False, add_special_tokens=False)["input_ids"]
    readable = window - 2
    if len(ids) <= readable:
        return None
    tail = tokenizer.decode(ids[readable:]).strip()
    return (
        f"{field} is {len(ids)} tokens; the model reads {readable} — the rest is ignored "
        f"(\u201c{tail[:80]}{'…' if len(tail) > 80 else ''}\u201d)"
    )
