"""Reading a language model's answer: a numbered list, JSON, or junk around either. Torch-free.

`parse_suggestions` turns whatever came back into candidate prompts (possibly none); `validate` keeps the
ones an image model can use. Neither raises on bad input: garbage gives fewer suggestions, never an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: The text encoder's window (CLIP: 77 tokens, start and end tokens included).
TOKEN_WINDOW = 77
MAX_CHARS = 300  # a longer "prompt" is a paragraph of chatter, not a scene
_JSON_KEYS = ("prompts", "suggestions", "scenes", "bridges", "items", "steps", "storyboard", "answer")
_ITEM_KEYS = ("prompt", "text", "scene", "suggestion", "description", "caption")
_MARKER = re.compile(
    r"""^\s*(?:
        [-*•·‣▪–—>]+                              # bullets
      | \(?\d{1,2}\s*[.):\]]                      # 1.  1)  (1)  1:  1]
      | \d{1,2}\s+-                               # 1 -
      | (?:step|scene|prompt|bridge|frame|keyframe|suggestion)\s*\#?\d{1,2}\s*[:.)\-–]  # Scene 2:
    )\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_LABEL = re.compile(
    r"^\s*(?:prompt|scene|bridge|suggestion|caption|image|intermediate(?: scene)?)\s*:\s*", re.I
)
_ECHO = re.compile(r"^\s*(?:start|end|start scene|end scene|write\b|here (?:are|is)\b|sure\b|answer\b)", re.I)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")


def _strings_from_json(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict):
                for key in _ITEM_KEYS:
                    if isinstance(item.get(key), str):
                        out.append(item[key])
                        break
        return out
    if isinstance(value, dict):
        for key in _JSON_KEYS:
            if key in value:
                return _strings_from_json(value[key])
        for item in value.values():
            if isinstance(item, list):
                return _strings_from_json(item)
        for key in _ITEM_KEYS:
            if isinstance(value.get(key), str):
                return [value[key]]
    return []


def _json_candidates(text: str) -> list[str] | None:
    """The strings of a JSON answer (fenced or bare), or None when the text holds no JSON."""
    blocks = [m.group(1) for m in _FENCE.finditer(text)]
    for opening, closing in (("[", "]"), ("{", "}")):
        start, end = text.find(opening), text.rfind(closing)
        if 0 <= start < end:
            blocks.append(text[start : end + 1])
    for block in blocks:
        try:
            value = json.loads(block)
        except ValueError:
            continue
        strings = _strings_from_json(value)
        if strings:
            return strings
    return None


def clean(line: str) -> str:
    """One candidate without list markers, labels, quotes, markdown or a trailing full stop."""
    line = line.strip()
    line = _MARKER.sub("", line, count=1)
    line = _LABEL.sub("", line, count=1)
    line = line.replace("**", "").replace("__", "").replace("`", "")
    line = re.sub(r"\s+", " ", line).strip()
    line = line.strip(" \"'“”‘’«»")
    line = re.sub(r"\s*\((?:closer to|near|towards?|start|end|middle)[^)]*\)\s*$", "", line, flags=re.I)
    line = line.rstrip(" .,;:!").strip(" \"'“”‘’«»")
    return line


def parse_suggestions(text: str | None) -> list[str]:
    """Candidate prompts from a model's answer, in its order, without duplicates. Never raises."""
    if not text or not isinstance(text, str):
        return []
    strings = _json_candidates(text)
    if strings is None:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) == 1 and (";" in lines[0] or " | " in lines[0]):
            lines = re.split(r";| \| ", lines[0])
        marked = [line for line in lines if _MARKER.match(line)]
        # A list among chatter ("Here are three scenes:", rambling after it): the list is the answer.
        strings = marked or lines
    out: list[str] = []
    seen: set[str] = set()
    for raw in strings:
        if not isinstance(raw, str):
            continue
        for piece in raw.splitlines() or [raw]:
            if (
                _ECHO.match(piece)
                or piece.rstrip().endswith(":")
                or piece.lstrip()[:1] in ("{", "[", "}", "]")
            ):
                continue  # an echo of the request, a header, or broken JSON
            if piece.lstrip().startswith("```"):
                continue
            line = clean(piece)
            key = normalise(line)
            if not key or key in seen or len(line) > MAX_CHARS or not re.search(r"[A-Za-z]{2}", line):
                continue
            seen.add(key)
            out.append(line)
    return out


def normalise(prompt: str) -> str:
    """Lower-case words only, articles dropped: what two prompts must share to be the same prompt."""
    words = [w for w in _WORD.findall(prompt.lower()) if w not in ("a", "an", "the")]
    return " ".join(words)


def is_copy(prompt: str, others: Iterable[str], overlap: float = 0.85) -> bool:
    """The same words as one of `others` (articles and punctuation aside), or nearly all of them."""
    words = set(normalise(prompt).split())
    for other in others:
        theirs = set(normalise(other).split())
        if normalise(prompt) == normalise(other):
            return True
        union = words | theirs
        if union and len(words & theirs) / len(union) >= overlap:
            return True
    return False


@dataclass(frozen=True)
class Candidate:
    """A usable suggestion: its prompt, where it came from, and the model's text if it was adapted."""

    prompt: str
    source: str = "llm"
    original: str | None = None


@dataclass(frozen=True)
class Rejection:
    prompt: str
    reason: str


def validate(
    prompts: Sequence[str],
    endpoints: Sequence[str],
    *,
    count_tokens: Callable[[str], int] | None = None,
    window: int = TOKEN_WINDOW,
    adapt: Callable[[str], str | None] | None = None,
    source: str = "llm",
) -> tuple[list[Candidate], list[Rejection]]:
    """Keep the prompts an image model can use; say why each other one was dropped.

    - not empty, and made of words;
    - not a copy of an endpoint (or of an existing keyframe's prompt: pass them in `endpoints`);
    - within the text encoder's window (`count_tokens` counts with the model's tokenizer, start and end
      tokens included);
    - `adapt` (a small-vocabulary model) returns the prompt in the words the model knows, or None when it
      knows none of them.
    """
    kept: list[Candidate] = []
    rejected: list[Rejection] = []
    seen: list[str] = []
    for prompt in prompts:
        prompt = (prompt or "").strip()
        if not re.search(r"[A-Za-z]{2}", prompt):
            rejected.append(Rejection(prompt, "empty"))
            continue
        original = None
        if adapt is not None:
            adapted = adapt(prompt)
            if adapted is None:
                rejected.append(Rejection(prompt, "no word the model knows"))
                continue
            if adapted != prompt:
                original, prompt = prompt, adapted
        if is_copy(prompt, endpoints):
            rejected.append(Rejection(original or prompt, "a copy of an endpoint"))
            continue
        if any(normalise(prompt) == normalise(s) for s in seen):
            rejected.append(Rejection(original or prompt, "a duplicate"))
            continue
        if count_tokens is not None:
            try:
                tokens = count_tokens(prompt)
            except Exception:  # a tokenizer that chokes on the text: the text is junk
                rejected.append(Rejection(prompt, "not tokenizable"))
                continue
            if tokens > window:
                rejected.append(Rejection(prompt, f"{tokens} tokens, over the {window}-token window"))
                continue
        seen.append(prompt)
        kept.append(Candidate(prompt, source, original))
    return kept, rejected
