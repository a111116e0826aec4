"""Model names and where they live, and which revision of the weights a name stands for. Torch-free."""

from __future__ import annotations

import hashlib
import os
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


def _digest_weights(folder: Path) -> str:
    """Configs in full; weight files by size and their first and last MiB (a fine-tune changes both).

    Reading a few MiB instead of every byte keeps this cheap for a 4 GB Stable Diffusion directory.
    """
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith(".") or path.suffix in (".md", ".png", ".jpg"):
            continue
        relative = path.relative_to(folder).as_posix()
        digest.update(relative.encode())
        size = path.stat().st_size
        digest.update(str(size).encode())
        with path.open("rb") as handle:
            if path.suffix in (".json", ".txt") or size <= 2 * _SAMPLE:
                digest.update(handle.read())
            else:
                digest.update(handle.read(_SAMPLE))
                handle.seek(-_SAMPLE, 2)
                digest.update(handle.read(_SAMPLE))
    return digest.hexdigest()[:16]


_SAMPLE = 1 << 20
_revisions: dict[tuple[str, float], str] = {}


def model_revision(model: str, models_dir: Path) -> str:
    """A short id of the weights a model name stands for right now; part of every frame's identity.

    A local directory (built-in or not) is hashed (cached per directory and modification time); a hub id
    reads the commit of its snapshot in the local Hugging Face cache; unknown stays "" (not yet fetched).
    """
    location = Path(model_location(model, models_dir))
    if (location / "model_index.json").is_file():
        stamp = max(p.stat().st_mtime for p in location.rglob("*") if p.is_file())
        key = (str(location.resolve()), stamp)
        if key not in _revisions:
            _revisions[key] = _digest_weights(location)
        return _revisions[key]
    return _hub_revision(model)


def _hub_revision(model_id: str) -> str:
    if model_id.count("/") != 1:
        return ""
    cache = Path(
        os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub"
    )
    ref = cache.expanduser() / f"models--{model_id.replace('/', '--')}" / "refs" / "main"
    return ref.read_text().strip()[:16] if ref.is_file() else ""
