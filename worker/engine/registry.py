"""Where a model's files are. Pure Python: the web app asks this too (for the tokenizer), without torch."""

from __future__ import annotations

from pathlib import Path

TINY_MODEL = "segue-tiny"
MINI_MODEL = "segue-mini"
BUILTIN_MODELS = (TINY_MODEL, MINI_MODEL)
#: Trained weights that ship inside the repository.
SHIPPED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def model_location(model: str, models_dir: Path) -> str:
    """A built-in name → its directory; anything else (a hub id or a local directory) passes through."""
    if model == TINY_MODEL:
        return str(Path(models_dir) / TINY_MODEL)
    if model == MINI_MODEL:
        return str(SHIPPED_MODELS_DIR / MINI_MODEL)
    return model
