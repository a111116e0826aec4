"""The suggester interface and the few-shot prompt it sends (engine/prompts/bridge.txt). Torch-free."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from engine.suggesters.parse import normalise, parse_suggestions

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
BRIDGE_PROMPT = PROMPTS_DIR / "bridge.txt"

Message = dict[str, str]


class SuggesterError(Exception):
    """The suggester could not answer at all (no model, endpoint unreachable); the caller falls back."""


@dataclass(frozen=True)
class FewShotPrompt:
    system: str
    examples: tuple[tuple[str, str], ...]  # (request, answer)
    request: str

    def messages(self, start: str, end: str, count: int) -> list[Message]:
        """Chat messages: the system text, each example as a user/assistant turn, then the request."""
        messages: list[Message] = [{"role": "system", "content": self.system}]
        for question, answer in self.examples:
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        request = self.request.format(start=start.strip(), end=end.strip(), count=count)
        messages.append({"role": "user", "content": request})
        return messages


def _section_text(lines: list[str]) -> str:
    text = "\n".join(lines).strip()
    # Prose wrapped over several lines reads as one paragraph; list items keep their lines.
    return re.sub(r"(?<![.:\n])\n(?!\d+\.|\n)", " ", text)


@lru_cache(maxsize=8)
def load_prompt(path: Path = BRIDGE_PROMPT) -> FewShotPrompt:
    """Parse the prompt file: [system], [example] blocks (request --- answer), [request]."""
    sections: list[tuple[str, list[str]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        header = re.fullmatch(r"\[(\w+)\]\s*", line)
        if header:
            sections.append((header.group(1), []))
        elif sections:
            sections[-1][1].append(line)
    system, request = "", ""
    examples: list[tuple[str, str]] = []
    for name, lines in sections:
        if name == "system":
            system = _section_text(lines)
        elif name == "request":
            request = "\n".join(lines).strip()
        elif name == "example":
            text = "\n".join(lines).strip()
            question, _, answer = text.partition("\n---\n")
            examples.append((question.strip(), answer.strip()))
    if not system or not request:
        raise ValueError(f"{path} needs a [system] and a [request] section")
    return FewShotPrompt(system, tuple(examples), request)


@dataclass
class Suggestions:
    """What a suggester proposed: candidate prompts in its order, and the raw answers for the record."""

    prompts: list[str]
    raw: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Suggester(ABC):
    """Proposes intermediate prompts between two prompts. Implementations never invent positions or ranks:
    the worker validates, probes and ranks what they propose."""

    name: str = "suggester"
    label: str = "suggester"

    @abstractmethod
    def suggest(self, start: str, end: str, count: int, seed: int = 0) -> Suggestions:
        """Up to a few times `count` candidates, ordered from near `start` to near `end`.

        Raises SuggesterError only when nothing could be asked at all; bad answers give few candidates.
        """


class ChatSuggester(Suggester):
    """A suggester that asks a chat model with the few-shot prompt and parses its answers."""

    def __init__(self, prompt: FewShotPrompt | None = None) -> None:
        self.prompt = prompt or load_prompt()

    @abstractmethod
    def complete(self, messages: list[Message], count: int, seed: int) -> list[str]:
        """The model's answers (one or several samples) to the chat."""

    def suggest(self, start: str, end: str, count: int, seed: int = 0) -> Suggestions:
        import time

        started = time.perf_counter()
        raw = self.complete(self.prompt.messages(start, end, count), count, seed)
        prompts: list[str] = []
        seen: set[str] = set()
        for text in raw:
            for prompt in parse_suggestions(text):
                key = normalise(prompt)
                if key not in seen:
                    seen.add(key)
                    prompts.append(prompt)
        return Suggestions(prompts, raw, time.perf_counter() - started)
