"""Prompt length against the text encoder's window, counted with the light `tokenizers` library.

The web process never imports transformers: it reads the model's `tokenizer/tokenizer.json`, or builds
CLIP's byte-level BPE from `vocab.json` and `merges.txt` (what Stable Diffusion directories ship).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.registry import model_location
from infra.config import get_settings

#: CLIP text encoders read 77 tokens, two of which are the start and end markers.
CLIP_WINDOW = 77


def _clip_bpe(folder: Path) -> Any:
    """CLIP's tokenizer from vocab and merges: lowercased, whitespace collapsed, words end in </w>."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    bpe = models.BPE.from_file(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        unk_token="<|endoftext|>",
        end_of_word_suffix="</w>",
    )
    tokenizer = Tokenizer(bpe)
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    pattern = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


@lru_cache(maxsize=8)
def _tokenizer(location: str) -> tuple[Any, int] | None:
    """(tokenizer, window) of a model directory, or None when it has no CLIP-format tokenizer here."""
    folder = Path(location) / "tokenizer"
    try:
        from tokenizers import Tokenizer

        if (folder / "tokenizer.json").is_file():
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            tokenizer = _clip_bpe(folder)
        else:
            return None
        tokenizer.no_truncation()
        tokenizer.no_padding()
        config = folder / "tokenizer_config.json"
        window = CLIP_WINDOW
        if config.is_file():
            window = int(json.loads(config.read_text()).get("model_max_length") or CLIP_WINDOW)
        return tokenizer, min(window, 1024)
    except Exception:  # not built yet, or not a CLIP model: no warning then
        return None


def prompt_warning(field: str, prompt: str, model: str) -> str | None:
    """A message when the prompt runs past the encoder's window, saying what gets cut."""
    if not prompt:
        return None
    found = _tokenizer(model_location(model, get_settings().models_folder))
    if found is None:
        return None
    tokenizer, window = found
    ids = tokenizer.encode(prompt, add_special_tokens=False).ids
    readable = window - 2
    if len(ids) <= readable:
        return None
    tail = tokenizer.decode(ids[readable:]).strip()
    return (
        f"{field} is {len(ids)} tokens; the model reads {readable} — the rest is ignored "
        f"(\u201c{tail[:80]}{'…' if len(tail) > 80 else ''}\u201d)"
    )
