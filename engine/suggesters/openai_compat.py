"""Any OpenAI-compatible chat endpoint (llama.cpp server, vLLM, Ollama, LM Studio, OpenAI itself).

Plain urllib, no client library: POST {url}/chat/completions with the few-shot messages, read
choices[*].message.content. SEGUE_SUGGEST_URL is the base URL (".../v1") or the full chat URL.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from engine.suggesters.base import ChatSuggester, FewShotPrompt, Message, SuggesterError


def chat_url(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else f"{url}/chat/completions"


class OpenAICompatibleSuggester(ChatSuggester):
    name = "openai"

    def __init__(
        self,
        url: str,
        model: str = "",
        key: str = "",
        timeout: float = 60.0,
        temperature: float = 0.7,
        prompt: FewShotPrompt | None = None,
    ) -> None:
        super().__init__(prompt)
        if not url:
            raise SuggesterError("no endpoint URL (SEGUE_SUGGEST_URL)")
        self.url = chat_url(url)
        self.model = model
        self.key = key
        self.timeout = timeout
        self.temperature = temperature
        self.label = f"{model or 'chat model'} at {self.url.split('://', 1)[-1].split('/', 1)[0]}"

    def complete(self, messages: list[Message], count: int, seed: int) -> list[str]:
        body: dict[str, Any] = {
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": 40 * count + 40,
            "seed": seed,
        }
        if self.model:
            body["model"] = self.model
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read().decode("utf-8", errors="replace"))
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", errors="replace")
            raise SuggesterError(f"{self.url} answered HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise SuggesterError(f"{self.url} is unreachable: {exc}") from exc
        except ValueError as exc:
            raise SuggesterError(f"{self.url} did not answer JSON: {exc}") from exc
        texts: list[str] = []
        for choice in payload.get("choices", []) if isinstance(payload, dict) else []:
            if not isinstance(choice, dict):
                continue
            message = choice.get("message") or {}
            content = message.get("content") if isinstance(message, dict) else None
            if content is None:
                content = choice.get("text")  # completions-style servers
            if isinstance(content, str):
                texts.append(content)
        return texts
