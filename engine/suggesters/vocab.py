"""The words an image model knows, for models with a small vocabulary (Segue-mini). Torch-free.

Segue-mini's tokenizer and CLIP were trained on its world's captions only: "a girl standing in a city
garden" reaches it as "a girl ... in a city ...", the rest falls to byte-level pieces it never learnt. A
suggestion for such a model is rebuilt from the words it knows (`adapt`), and dropped when none are left.

Where the words come from: a word list shipped beside the prompts (engine/prompts/vocab/<model>.txt,
checked against the world by the tests), else the tokenizer's own whole-word tokens. A list that gives
each word its role (scene, object, colour, sky, ...) lets `adapt` rebuild a caption in the world's own
form ("a girl sitting on a balcony after dark, looking up at stars" -> "a girl under a starry sky"); a
plain list only drops the unknown words. Models with a full CLIP vocabulary (Stable Diffusion,
segue-tiny) get no Vocabulary: every English word is theirs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

VOCAB_DIR = Path(__file__).resolve().parent.parent / "prompts" / "vocab"
#: A tokenizer smaller than this was trained on a closed world (Segue-mini: 805; CLIP: 49408).
SMALL_VOCABULARY = 5000
#: Glue words: kept only in front of a content word that stays.
_GLUE = """a an the in on at of with and to under during into near by over from its their is are where as
while through beside behind above below between around across along among onto upon"""
FUNCTION_WORDS = frozenset(_GLUE.split())
_WORDS = re.compile(r"[a-z]+")


#: How a sky word reads in a caption, after the world's phrases (SKY_PHRASES in training/world.py).
SKY_PHRASE = {
    "day": "during the day", "daytime": "in the daytime", "daylight": "in daylight", "noon": "at noon",
    "sunny": "on a sunny day", "sunset": "at sunset", "dusk": "at dusk", "evening": "in the evening",
    "sundown": "at sundown", "night": "at night", "nighttime": "at night", "midnight": "at midnight",
    "starry": "under a starry sky", "stars": "under a starry sky",
}  # fmt: skip
_ON_SCENES = {"sea", "ocean", "beach", "shore"}
_BARE_SCENES = {"mountains", "dunes", "snow", "flowers"}  # read without an article
_WORN = {"girl", "child", "person"}  # "a girl in red", not "a red girl"


class Vocabulary:
    def __init__(self, words: set[str] | frozenset[str], roles: dict[str, set[str]] | None = None) -> None:
        self.words = frozenset(w.lower() for w in words)
        self.roles = {role: frozenset(ws) for role, ws in (roles or {}).items()}

    @classmethod
    def from_file(cls, path: Path) -> Vocabulary:
        """Words, one line per role ("scene: city forest ...") or just words."""
        roles: dict[str, set[str]] = {}
        words: set[str] = set()
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            role, colon, rest = line.partition(":")
            if colon and role.strip().replace("_", "").isalpha():
                roles.setdefault(role.strip(), set()).update(rest.lower().split())
                words.update(rest.lower().split())
            else:
                words.update(line.lower().split())
        return cls(words, roles)

    def role(self, word: str) -> str | None:
        return next((r for r, ws in self.roles.items() if word in ws), None)

    @classmethod
    def for_model(cls, model_name: str, tokenizer: Any = None) -> Vocabulary | None:
        """The model's known words, or None for a model that knows every English word."""
        listed = VOCAB_DIR / f"{Path(str(model_name)).name}.txt"
        if listed.is_file():
            return cls.from_file(listed)
        if tokenizer is None:
            return None
        try:
            size = len(tokenizer)
            vocab = tokenizer.get_vocab()
        except Exception:
            return None
        if size >= SMALL_VOCABULARY:
            return None
        words = {t[: -len("</w>")] for t in vocab if t.endswith("</w>") and t[:-4].isalpha() and len(t) > 6}
        return cls(words | {w for w in FUNCTION_WORDS if f"{w}</w>" in vocab}) if words else None

    def known(self, word: str) -> bool:
        return word.lower() in self.words

    def coverage(self, prompt: str) -> float:
        """The share of the prompt's content words the model knows (1.0 for a prompt of glue words only)."""
        content = [w for w in _WORDS.findall(prompt.lower()) if w not in FUNCTION_WORDS]
        return sum(self.known(w) for w in content) / len(content) if content else 1.0

    def adapt(self, prompt: str) -> str | None:
        """The prompt in the words the model knows; None when it knows none of its content words.

        Known content words stay in order; a glue word stays when it is known and the next content word
        stays. Where unknown words cut two kept phrases apart, "with" joins them unless the second already
        starts with glue ("a girl standing in a city garden" -> "a girl in a city"; "a dreamlike world
        where the city slowly transforms into a forest" -> "the city with a forest").
        """
        words = _WORDS.findall(prompt.lower())
        content = [i for i, w in enumerate(words) if w not in FUNCTION_WORDS]
        if not any(self.known(words[i]) for i in content):
            return None
        if all(self.known(w) for w in words):
            return prompt.strip()
        if "scene" in self.roles and "object" in self.roles:
            return self.rebuild(words)

        def next_content(i: int) -> int | None:
            return next((j for j in content if j > i), None)

        def phrase_head(i: int) -> bool:
            # An article's noun may come after unknown adjectives: "a beachside town" -> "a town".
            for w in words[i + 1 :]:
                if w in FUNCTION_WORDS:
                    return False
                if self.known(w):
                    return True
            return False

        keep: list[bool] = []
        for i, w in enumerate(words):
            if w in ("a", "an", "the"):
                keep.append(self.known(w) and phrase_head(i))
            elif w in FUNCTION_WORDS:
                j = next_content(i)
                keep.append(self.known(w) and j is not None and self.known(words[j]))
            else:
                keep.append(self.known(w))
        out: list[str] = []
        gap = False
        for i, w in enumerate(words):
            if not keep[i]:
                gap = gap or w not in FUNCTION_WORDS or not self.known(w)
                continue
            # Unknown words cut two kept phrases apart: join them ("a dog ... a city" -> "a dog with a city")
            joins = w not in FUNCTION_WORDS or w in ("a", "an", "the")
            if gap and out and joins and out[-1] not in FUNCTION_WORDS and self.known("with"):
                out.append("with")
            if out and out[-1] == w:
                continue
            out.append(w)
            gap = False
        while out and out[-1] in FUNCTION_WORDS:
            out.pop()
        while out and out[0] in FUNCTION_WORDS and out[0] not in ("a", "an", "the"):
            out.pop(0)
        for i in range(len(out) - 1):  # "a ocean" -> "an ocean"
            if out[i] in ("a", "an"):
                article = "an" if out[i + 1][0] in "aeiou" else "a"
                out[i] = article if self.known(article) else out[i]
        return " ".join(out) or None

    def rebuild(self, words: list[str]) -> str | None:
        """A caption in the world's form from the words it knows: object, scene, sky, sun or moon.

        "[a colour object] [and a second one] in|on [a style/modifier scene] [sky phrase] [with the moon]";
        None when neither an object nor a scene (nor a style that implies one) is named.
        """
        role = [self.role(w) for w in words]
        objects: list[str] = []
        scene: str | None = None
        sky: str | None = None
        celestial: str | None = None
        style: str | None = None
        for i, (w, r) in enumerate(zip(words, role, strict=True)):
            before = [words[j] for j in range(max(0, i - 3), i)]
            if r == "object" and len(objects) < 2 and all(w not in o.split() for o in objects):
                colour = next((b for b in reversed(before) if self.role(b) == "colour"), None)
                after = words[i + 1 : i + 5]
                if colour is None and w in _WORN and "dress" in after:  # "a girl in a blue dress"
                    colour = next((a for a in after if self.role(a) == "colour"), None)
                size = next((b for b in before if self.role(b) == "object_modifier"), None)
                noun = f"{size} {w}" if size else w
                if colour and w in _WORN:
                    objects.append(f"{_article(noun)} {noun} in {colour}")
                elif colour:
                    phrase = f"{size} {colour} {w}" if size else f"{colour} {w}"
                    objects.append(f"{_article(phrase)} {phrase}")
                else:
                    objects.append(f"{_article(noun)} {noun}")
            elif r == "scene" and scene is None:
                mods: list[str] = []
                for b in reversed(before):
                    if self.role(b) in ("style", "scene_modifier") or b in ("sunny", "starry"):
                        mods.insert(0, b)
                    else:
                        break
                phrase = " ".join([*mods, w])
                if w in _BARE_SCENES:
                    scene = phrase
                elif w == "woods":
                    scene = " ".join(mods + ["woods"]) if mods else "the woods"
                else:
                    scene = f"{_article(phrase)} {phrase}"
                if any(m in SKY_PHRASE for m in mods):
                    sky = sky or ""
            elif r and r.startswith("sky_") and sky is None and w in SKY_PHRASE:
                sky = SKY_PHRASE[w]
            elif r == "celestial" and celestial is None:
                celestial = w
            elif r == "style" and style is None and w != "lit":
                style = w
        if scene is None and style is not None:
            scene = f"{_article(style)} {style} {'city' if style in ('futuristic', 'neon') else 'forest'}"
        if not objects and scene is None:
            return None
        subject = " and ".join(objects)
        noun = scene.split()[-1] if scene else ""
        if subject and scene:
            text = f"{subject} {'on' if noun in _ON_SCENES else 'in'} {scene}"
        else:
            text = subject or scene or ""
        if sky:
            text += f" {sky}"
        if celestial and not (celestial == "moon" and sky and "starry" in sky):
            text += f" with the {celestial}"
        return text.strip() or None


def _article(phrase: str) -> str:
    return "an" if phrase[:1] in "aeiou" else "a"
