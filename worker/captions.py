"""The caption of a picture keyframe without a prompt (docs/image-endpoints.md), worker side.

Segue-mini: its own CLIP (clip/ beside the model) picks the best of the captions its world can say
(`world_captions`: every sky x ground x style x main object and colour, in the world's own words, built from
training/world.py's vocabulary). A model without its own CLIP (Stable Diffusion: its pipeline has a text
encoder but no image tower, and no closed vocabulary) gets the empty prompt. The caption is a function of
the picture and the model revision, computed once and kept in the frame store (services/image_captions).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from services import image_captions
from worker.images import stored_picture


@functools.cache
def world_captions() -> tuple[str, ...]:
    """One plain caption per scene Segue-mini's world can show (without celestial bodies or positions)."""
    from training import world

    def thing(kind: str, colour: str | None) -> str:
        noun = world.OBJ_NOUNS[kind][0]
        if colour is None:
            return world._a(noun)
        return world._a(noun) + f" in a {colour} dress" if kind == "girl" else world._a(f"{colour} {noun}")

    out: list[str] = []
    for sky in world.SKIES:
        for ground in world.GROUNDS:
            styles: list[str | None] = [None]
            if ground == "city":
                styles += ["futuristic"] + (["neon"] if sky == "night" else [])
            elif ground == "forest":
                styles.append("magical")
            for style in styles:
                noun = " ".join(w for w in (style, world.GROUND_NOUNS[ground][0]) if w)
                scene = "the sea" if noun == "sea" else world._a(noun)
                when = world.SKY_PHRASES[sky][0]
                out.append(f"{scene} {when}")
                for kind in world.ALLOWED[ground]:
                    for colour in world.OBJ_COLOURS[kind]:
                        out.append(f"{thing(kind, colour)} {world.PREP[ground]} {scene} {when}")
    return tuple(dict.fromkeys(out))


def has_own_clip(engine: Any) -> bool:
    folder = getattr(engine, "folder", None)
    return folder is not None and (Path(folder) / "clip" / "config.json").is_file()


def caption_for(engine: Any, image: Any, image_sha256: str, model_revision: str, store: Any = None) -> str:
    """The picture's caption under this model (stored in `store`, or chosen now and stored there).

    image: the picture, or None to read it from the store by its SHA-256, only if a caption is chosen now."""
    from infra.storage import get_store

    store = store or get_store()
    stored = image_captions.stored_caption(image_sha256, model_revision, store)
    if stored is not None:
        return stored
    caption = ""
    if has_own_clip(engine):
        from engine.captions import best_caption, clip_scores
        from worker.moce import clip_for

        picture = stored_picture(store, image_sha256) if image is None else image
        caption = best_caption(picture, world_captions(), clip_scores(clip_for(engine)))
    image_captions.keep_caption(image_sha256, model_revision, caption, store)
    return caption
