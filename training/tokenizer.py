"""A small CLIP-format BPE trained on the world's captions.

Same scheme as OpenAI CLIP's tokenizer (lower-case, CLIP pre-tokenisation regex,
byte-level alphabet, ``</w>`` end-of-word suffix, <|startoftext|>/<|endoftext|>),
so ``CLIPTokenizer.from_pretrained`` loads it and unknown words still tokenize
(they fall back to byte-level pieces, every byte is in the vocabulary).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

from engine.bpe import bytes_to_unicode

from . import world

CLIP_PAT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
EXTRA_TEXT = [
    "a futuristic cityscape",
    "a girl in a magical forest",
    "a photo of a cat",
    "an astronaut riding a horse",
    "a painting of a castle",
    "a red car on a road",
    "a portrait of a man",
    "a bird flying over the river",
]


def train_bpe(corpus: list[str], vocab_size: int = 1024) -> tuple[dict[str, int], list[str]]:
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>", continuing_subword_prefix=""))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CLIP_PAT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        continuing_subword_prefix="",
        show_progress=False,
        min_frequency=2,
    )
    tok.train_from_iterator(corpus, trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    # CLIP vocabulary order: bytes, bytes+</w>, merges, specials
    b2u = list(bytes_to_unicode().values())
    vocab_list = b2u + [c + "</w>" for c in b2u]
    seen = set(vocab_list)
    kept = []
    for m in merges:
        a, b = m.split(" ")
        if a not in seen or b not in seen:
            continue
        tokn = a + b
        if tokn in seen:
            continue
        vocab_list.append(tokn)
        seen.add(tokn)
        kept.append(m)
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(vocab_list)}, kept


def build(out_dir: str | Path, seed: int = 0, n: int = 20000, vocab_size: int = 1024):
    from transformers import CLIPTokenizer

    rng = random.Random(seed)
    corpus = []
    for _ in range(n):
        sc = world.sample_scene(rng, "any")
        corpus.append(world.caption(sc, rng))
    corpus += EXTRA_TEXT * 5
    vocab, merges = train_bpe(corpus, vocab_size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges], model_max_length=77)
    tok.save_pretrained(out)
    # transformers 5 only writes tokenizer.json: also write the slow-format files
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model_max_length"] = 77
    cfg["do_lower_case"] = True
    cfg_path.write_text(json.dumps(cfg, indent=2))
    return CLIPTokenizer.from_pretrained(out)


if __name__ == "__main__":
    import sys

    t = build(sys.argv[1] if len(sys.argv) > 1 else "data/mini/tokenizer")
    for s in ["a futuristic cityscape", "A girl in a magical forest", "xylophone zebra 42!"]:
        ids = t(s).input_ids
        print(len(t), s, ids, t.convert_ids_to_tokens(ids), t.decode(ids, skip_special_tokens=True))
