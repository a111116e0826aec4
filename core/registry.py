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
#: A LoRA file fused into every model that is not built in (e.g. LCM-LoRA for 4-step renders); the web
#: processes and the workers must see the same value, since it is part of every frame's model revision.
LORA_VARIABLE = "SEGUE_LORA"
#: The layer probe's recorded block choice for a model (bench/layer_probe.py --record), beside its weights.
LAYER_PROBE_FILE = "layer-probe.json"


def active_lora() -> Path | None:
    """The LoRA file of SEGUE_LORA, or None when it is unset or empty."""
    value = os.environ.get(LORA_VARIABLE, "").strip()
    return Path(value).expanduser() if value else None


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
        if path.name == LAYER_PROBE_FILE:  # a measurement of the weights, not part of them
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
    A model that is not built in, with SEGUE_LORA set, adds "+lora-" and the LoRA file's digest.
    """
    base = _base_revision(model, models_dir)
    lora = None if model in BUILTIN_MODELS else active_lora()
    if lora is None:
        return base
    # A web process that cannot see the file (it lives on the workers) still tells LoRAs apart by name.
    mark = _digest_file(lora) if lora.is_file() else hashlib.sha256(lora.name.encode()).hexdigest()[:12]
    return f"{base}+lora-{mark}"


def _base_revision(model: str, models_dir: Path) -> str:
    location = Path(model_location(model, models_dir))
    if (location / "model_index.json").is_file():
        stamp = max(p.stat().st_mtime for p in location.rglob("*") if p.is_file())
        key = (str(location.resolve()), stamp)
        if key not in _revisions:
            _revisions[key] = _digest_weights(location)
        return _revisions[key]
    return _hub_revision(model)


def layer_probe_record(model: str, models_dir: Path, data_dir: Path) -> Path:
    """Where the layer probe's choice for `model` is recorded: beside the weights when the model is a
    writable local directory (or already holds a record), else a file per model and revision under the
    data directory (a hub id, a read-only install)."""
    location = Path(model_location(model, models_dir))
    if (location / "model_index.json").is_file():
        beside = location / LAYER_PROBE_FILE
        if beside.is_file() or os.access(location, os.W_OK):
            return beside
    revision = model_revision(model, models_dir) or "unknown"
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model.strip("/"))
    return Path(data_dir) / "layer-probe" / f"{slug}@{revision}.json"


def _digest_file(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime)
    if key not in _revisions:
        digest = hashlib.sha256(str(stat.st_size).encode())
        with path.open("rb") as handle:
            digest.update(handle.read(_SAMPLE))
            if stat.st_size > 2 * _SAMPLE:
                handle.seek(-_SAMPLE, 2)
            digest.update(handle.read(_SAMPLE))
        _revisions[key] = digest.hexdigest()[:12]
    return _revisions[key]


def _hub_revision(model_id: str) -> str:
    if model_id.count("/") != 1:
        return ""
    cache = Path(
        os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub"
    )
    ref = cache.expanduser() / f"models--{model_id.replace('/', '--')}" / "refs" / "main"
    return ref.read_text().strip()[:16] if ref.is_file() else ""
