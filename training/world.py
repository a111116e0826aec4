"""The Segue-mini scene world: a pure, seeded generator of captioned 64x64 scenes.

Every image is drawn with Pillow from a :class:`Scene` (its ground-truth attributes)
and described by captions from a small grammar with paraphrases and synonyms.

Deliberate co-occurrence biases (documented in the model card; they reproduce the
latent concept misalignment that MoCE studies, so it can be demonstrated on CPU):

* the moon only ever appears in night skies (the sun never does);
* "neon" cities only exist at night;
* boats only appear on water (sea or beach);
* pyramids only appear in the desert and are always sand coloured (never named
  with a colour).

Held-out combinations (never generated for training, used by the evaluation):
see :data:`HELDOUT`.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field

from PIL import Image, ImageDraw

SIZE = 64
SS = 2  # supersampling factor (drawn at 128x128, box-filtered down)
S = SIZE * SS

SKIES = ("day", "sunset", "night")
GROUNDS = ("city", "forest", "sea", "beach", "desert", "snow", "mountains", "meadow")
OBJECTS = ("girl", "dog", "house", "boat", "pyramid")
STYLES = ("futuristic", "neon", "magical")
COLOURS = {
    "red": (225, 35, 35),
    "blue": (35, 75, 235),
    "yellow": (250, 215, 30),
    "green": (40, 175, 55),
    "white": (245, 245, 245),
    "purple": (150, 55, 205),
    "brown": (135, 80, 35),
    "black": (25, 25, 25),
}
COLOUR_NAMES = tuple(COLOURS)
OBJ_COLOURS = {
    "girl": ("red", "blue", "yellow", "green", "white", "purple"),
    "dog": ("brown", "white", "black", "yellow"),
    "house": ("red", "blue", "yellow", "white", "green"),
    "boat": ("red", "blue", "yellow", "white"),
    "pyramid": (None,),
}
ALLOWED = {
    "city": ("girl", "dog"),
    "forest": ("girl", "dog", "house"),
    "sea": ("boat",),
    "beach": ("girl", "dog", "boat", "house"),
    "desert": ("pyramid", "girl", "dog"),
    "snow": ("girl", "dog", "house"),
    "mountains": ("girl", "dog", "house"),
    "meadow": ("girl", "dog", "house"),
}
# (sky, ground, main object) triples that never occur in training data
HELDOUT = {
    ("sunset", "snow", "girl"),
    ("night", "meadow", "dog"),
    ("day", "beach", "house"),
    ("sunset", "city", "dog"),
    ("night", "mountains", "house"),
    ("day", "forest", "dog"),
}
POSITIONS = ("left", "center", "right")


@dataclass
class Obj:
    kind: str
    colour: str | None
    pos: str  # left / center / right


@dataclass
class Scene:
    sky: str
    ground: str
    style: str | None = None
    celestial: str | None = None  # sun / moon / None
    objects: list[Obj] = field(default_factory=list)
    relation: str | None = None  # "left of" / "right of" / "in front of" between objects[0] and objects[1]

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def main(self) -> str | None:
        return self.objects[0].kind if self.objects else None


# ----------------------------------------------------------------------------- sampling
def _rng(seed: int, index: int, salt: int = 0) -> random.Random:
    return random.Random((seed * 1_000_003 + index) * 7 + salt)


def sample_scene(rng: random.Random, split: str = "train") -> Scene:
    """Sample scene attributes. split="train" never yields a HELDOUT triple,
    split="heldout" only yields HELDOUT triples, split="any" yields anything."""
    main: str | None
    while True:
        if split == "heldout":
            sky, ground, main = rng.choice(sorted(HELDOUT))
            style = None
            if ground == "city":
                style = rng.choice([None, None, "futuristic"])
            elif ground == "forest":
                style = rng.choice([None, None, "magical"])
        else:
            ground = rng.choice(GROUNDS)
            style = None
            if ground == "city":
                style = rng.choice([None, None, "futuristic", "neon"])
            elif ground == "forest":
                style = rng.choice([None, None, "magical"])
            sky = "night" if style == "neon" else rng.choice(SKIES)
            r = rng.random()
            main = None if r < 0.25 else rng.choice(ALLOWED[ground])
        celestial = None
        if sky == "night":
            celestial = "moon" if rng.random() < 0.6 else None
        elif rng.random() < 0.55:
            celestial = "sun"
        objects: list[Obj] = []
        relation = None
        if main is not None:
            objects.append(Obj(main, rng.choice(OBJ_COLOURS[main]), rng.choice(POSITIONS)))
            others = [
                k
                for k in ALLOWED[ground]
                if k != main and k != "boat" or (k == "boat" and main != "boat" and ground == "beach")
            ]
            others = [k for k in others if k != main]
            if others and rng.random() < 0.3:
                second = rng.choice(others)
                if second in ("house", "pyramid") and main in ("girl", "dog") and rng.random() < 0.4:
                    relation = "in front of"
                    objects[0].pos = "center"
                    objects.append(Obj(second, rng.choice(OBJ_COLOURS[second]), "center"))
                else:
                    relation = rng.choice(["left of", "right of"])
                    p0, p1 = ("left", "right") if relation == "left of" else ("right", "left")
                    objects[0].pos = p0
                    objects.append(Obj(second, rng.choice(OBJ_COLOURS[second]), p1))
        scene = Scene(sky, ground, style, celestial, objects, relation)
        key = (sky, ground, scene.main)
        if split == "train" and key in HELDOUT:
            continue
        return scene


# ----------------------------------------------------------------------------- drawing
SKY_GRAD = {
    "day": ((60, 120, 225), (165, 205, 250)),
    "sunset": ((85, 50, 135), (255, 145, 55)),
    "night": ((4, 5, 22), (28, 34, 78)),
}


def _mix(a, b, t):
    return tuple(int(a[i] + (b[i] - a[i]) * t) for i in range(3))


def _shade(col, sky, emissive=False, obj=False):
    if emissive or sky == "day":
        return tuple(col)
    if sky == "sunset":
        f = 0.85 if obj else 0.75
        return (int(col[0] * f + 20), int(col[1] * f * 0.9), int(col[2] * f * 0.85))
    f = 0.62 if obj else 0.42
    return (int(col[0] * f), int(col[1] * f), int(col[2] * f + 12))


def _sky_at(sky, y, horizon):
    top, bot = SKY_GRAD[sky]
    return _mix(top, bot, min(1.0, max(0.0, y / max(1, horizon))))


def _jit(rng, c, a=12):
    return tuple(max(0, min(255, v + rng.randint(-a, a))) for v in c)


def _draw_sky(d, rng, sc, horizon):
    for y in range(0, horizon + 2):
        d.line([(0, y), (S, y)], fill=_sky_at(sc.sky, y, horizon))
    if sc.sky == "night":
        for _ in range(rng.randint(18, 30)):
            x, y = rng.randrange(S), rng.randrange(max(2, horizon - 4))
            r = rng.choice((1, 1, 2))
            d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 235))
    if sc.celestial == "sun":
        if sc.sky == "sunset":
            r = rng.randint(14, 19)
            x, y = rng.randint(20, S - 20), horizon - rng.randint(0, 12)
            d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 110, 35))
        else:
            r = rng.randint(10, 13)
            x, y = rng.randint(16, S - 16), rng.randint(14, max(15, horizon - 22))
            d.ellipse([x - r - 3, y - r - 3, x + r + 3, y + r + 3], fill=(235, 235, 190))
            d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 240, 120))
    elif sc.celestial == "moon":
        r = rng.randint(10, 13)
        x, y = rng.randint(16, S - 16), rng.randint(14, max(15, horizon - 22))
        d.ellipse([x - r, y - r, x + r, y + r], fill=(240, 240, 215))
        if rng.random() < 0.5:  # crescent
            off = rng.choice((-1, 1)) * rng.randint(6, 9)
            d.ellipse([x - r + off, y - r - 2, x + r + off, y + r - 2], fill=_sky_at("night", y, horizon))


def _tree(d, rng, x, base, h, col, sky, kind):
    trunk = _shade((90, 60, 30), sky)
    d.rectangle([x - 2, base - h * 0.25, x + 2, base], fill=trunk)
    c = _shade(_jit(rng, col, 15), sky)
    if kind == 0:
        w = h * 0.38
        for k in range(3):
            top = base - h + k * h * 0.22
            d.polygon(
                [
                    (x, top),
                    (x - w * (0.6 + 0.2 * k), top + h * 0.42),
                    (x + w * (0.6 + 0.2 * k), top + h * 0.42),
                ],
                fill=c,
            )
    else:
        r = h * 0.33
        d.ellipse([x - r, base - h, x + r, base - h + 2 * r], fill=c)


def _draw_ground(d, rng, sc, horizon):
    g, sky = sc.ground, sc.sky
    night = sky == "night"
    if g == "city":
        d.rectangle([0, horizon, S, S], fill=_shade((85, 85, 92), sky))
        d.rectangle([0, horizon + 10, S, horizon + 14], fill=_shade((60, 60, 66), sky))
        x = -rng.randint(0, 8)
        while x < S:
            if sc.style == "futuristic":
                w, h = rng.randint(9, 15), rng.randint(40, 75)
                col = _shade(_jit(rng, (175, 205, 225), 15), sky)
                d.rectangle([x, horizon - h, x + w, horizon + 2], fill=col)
                d.ellipse([x - 1, horizon - h - w // 2, x + w + 1, horizon - h + w // 2], fill=col)
                d.line(
                    [(x + w // 2, horizon - h - w // 2 - 10), (x + w // 2, horizon - h)],
                    fill=_shade((220, 230, 240), sky),
                    width=1,
                )
                for wy in range(horizon - h + 6, horizon - 3, 6):
                    d.line(
                        [(x + 2, wy), (x + w - 2, wy)],
                        fill=(120, 240, 255) if night else (90, 150, 190),
                        width=1,
                    )
                x += w + rng.randint(2, 7)
            else:
                w, h = rng.randint(12, 22), rng.randint(24, 58)
                if sc.style == "neon":
                    col = _jit(rng, (22, 16, 42), 8)
                else:
                    col = _shade(_jit(rng, (130, 130, 140), 25), sky)
                d.rectangle([x, horizon - h, x + w, horizon + 2], fill=col)
                if sc.style == "neon":
                    nc = rng.choice([(255, 40, 200), (40, 240, 255), (255, 60, 120)])
                    d.rectangle([x, horizon - h, x + w, horizon + 2], outline=nc, width=2)
                    if rng.random() < 0.5:
                        sy = horizon - h + rng.randint(4, max(5, h - 8))
                        d.rectangle(
                            [x + 3, sy, x + w - 3, sy + 4],
                            fill=rng.choice([(255, 230, 60), (255, 40, 200), (40, 240, 255)]),
                        )
                for wy in range(horizon - h + 4, horizon - 3, 6):
                    for wx in range(x + 3, x + w - 3, 5):
                        if night:
                            if rng.random() < 0.6:
                                d.rectangle([wx, wy, wx + 2, wy + 2], fill=(255, 220, 90))
                        else:
                            d.rectangle([wx, wy, wx + 2, wy + 2], fill=_shade((185, 205, 225), sky))
                x += w + rng.randint(0, 4)
    elif g == "forest":
        base_col = (28, 70, 62) if sc.style == "magical" else (30, 95, 35)
        d.rectangle([0, horizon, S, S], fill=_shade(base_col, sky))
        tree_col = (30, 150, 120) if sc.style == "magical" else (35, 125, 45)
        for _ in range(rng.randint(10, 14)):
            x = rng.randint(-5, S + 5)
            base = horizon + rng.randint(4, 22)
            _tree(d, rng, x, base, rng.randint(36, 62), tree_col, sky, 0 if rng.random() < 0.65 else 1)
        if sc.style == "magical":
            for _ in range(rng.randint(25, 40)):
                x, y = rng.randrange(S), rng.randrange(int(horizon * 0.4), S)
                r = rng.choice((1, 2, 2, 3))
                c = rng.choice([(255, 250, 140), (150, 255, 240), (230, 150, 255)])
                d.ellipse([x - r, y - r, x + r, y + r], fill=c)
    elif g in ("sea", "beach"):
        water = _shade((35, 95, 180), sky)
        d.rectangle([0, horizon, S, S], fill=water)
        light = _mix(water, (230, 240, 255), 0.35)
        for _ in range(rng.randint(10, 16)):
            y = rng.randint(horizon + 3, S)
            x = rng.randint(-10, S)
            d.line([(x, y), (x + rng.randint(8, 20), y)], fill=light, width=1)
        if g == "beach":
            sand_top = horizon + int((S - horizon) * rng.uniform(0.35, 0.5))
            d.polygon(
                [(0, sand_top + rng.randint(-4, 4)), (S, sand_top + rng.randint(-4, 4)), (S, S), (0, S)],
                fill=_shade((232, 210, 150), sky),
            )
            d.line([(0, sand_top - 2), (S, sand_top - 2)], fill=_shade((245, 245, 250), sky), width=2)
    elif g == "desert":
        sand = (228, 182, 100)
        d.rectangle([0, horizon, S, S], fill=_shade(sand, sky))
        for _ in range(3):
            cx, w = rng.randint(0, S), rng.randint(50, 90)
            y = horizon + rng.randint(6, 40)
            d.chord([cx - w, y - 12, cx + w, y + 20], 180, 360, fill=_shade((205, 155, 80), sky))
    elif g == "snow":
        d.rectangle([0, horizon, S, S], fill=_shade((240, 245, 252), sky))
        for _ in range(3):
            cx, w = rng.randint(0, S), rng.randint(40, 80)
            y = horizon + rng.randint(8, 50)
            d.chord([cx - w, y - 8, cx + w, y + 14], 180, 360, fill=_shade((205, 220, 240), sky))
        for _ in range(rng.randint(0, 3)):
            x = rng.randint(0, S)
            _tree(d, rng, x, horizon + rng.randint(2, 8), rng.randint(18, 26), (225, 235, 240), sky, 0)
    elif g == "mountains":
        d.rectangle([0, horizon, S, S], fill=_shade((85, 120, 70), sky))
        x = -rng.randint(10, 30)
        while x < S:
            w, h = rng.randint(45, 75), rng.randint(40, 70)
            col = _shade(_jit(rng, (115, 112, 130), 12), sky)
            top = (x + w / 2, horizon - h)
            d.polygon([(x, horizon + 2), top, (x + w, horizon + 2)], fill=col)
            f = 0.3
            d.polygon(
                [top, (top[0] - w / 2 * f, top[1] + h * f), (top[0] + w / 2 * f, top[1] + h * f)],
                fill=_shade((245, 245, 250), sky),
            )
            x += int(w * rng.uniform(0.5, 0.8))
    elif g == "meadow":
        d.rectangle([0, horizon, S, S], fill=_shade((95, 185, 60), sky))
        for _ in range(rng.randint(50, 80)):
            x, y = rng.randrange(S), rng.randrange(horizon + 2, S)
            r = 2 if y < horizon + 20 else 3
            c = rng.choice([(240, 40, 60), (255, 230, 50), (250, 250, 250), (255, 120, 200)])
            d.ellipse([x - r, y - r, x + r, y + r], fill=_shade(c, sky, obj=True))


def _draw_obj(d, rng, o: Obj, x, base, sky, scale=1.0):
    col = COLOURS.get(o.colour, (200, 200, 200)) if o.colour else None
    sh = lambda c: _shade(c, sky, obj=True)  # noqa: E731
    if o.kind == "girl":
        h = rng.randint(50, 58) * scale
        top = base - h
        hr = h * 0.12
        hair = rng.choice([(60, 35, 20), (20, 15, 10), (200, 160, 60)])
        d.ellipse([x - hr * 1.25, top - hr * 0.1, x + hr * 1.25, top + hr * 3.2], fill=sh(hair))
        d.line(
            [(x - h * 0.22, top + h * 0.36), (x + h * 0.22, top + h * 0.36)],
            fill=sh((240, 200, 170)),
            width=max(2, int(h * 0.06)),
        )
        d.polygon(
            [(x, top + h * 0.22), (x - h * 0.28, top + h * 0.78), (x + h * 0.28, top + h * 0.78)],
            fill=sh(col),
        )
        d.ellipse([x - hr, top, x + hr, top + 2 * hr], fill=sh((240, 200, 170)))
        lw = max(2, int(h * 0.06))
        d.line([(x - h * 0.08, top + h * 0.76), (x - h * 0.08, base)], fill=sh((60, 40, 40)), width=lw)
        d.line([(x + h * 0.08, top + h * 0.76), (x + h * 0.08, base)], fill=sh((60, 40, 40)), width=lw)
    elif o.kind == "dog":
        h = rng.randint(28, 34) * scale
        w = h * 1.5
        c = sh(col)
        d.line([(x + w * 0.45, base - h * 0.7), (x + w * 0.62, base - h * 1.0)], fill=c, width=3)
        for lx in (-0.35, -0.2, 0.2, 0.35):
            d.rectangle([x + w * lx - 2, base - h * 0.45, x + w * lx + 2, base], fill=c)
        d.ellipse([x - w * 0.5, base - h * 0.85, x + w * 0.5, base - h * 0.35], fill=c)
        d.ellipse([x - w * 0.72, base - h * 1.2, x - w * 0.3, base - h * 0.62], fill=c)
        d.polygon(
            [(x - w * 0.66, base - h * 1.1), (x - w * 0.6, base - h * 1.38), (x - w * 0.5, base - h * 1.12)],
            fill=c,
        )
        d.ellipse([x - w * 0.6, base - h * 1.02, x - w * 0.55, base - h * 0.96], fill=(10, 10, 10))
    elif o.kind == "house":
        h = rng.randint(44, 54) * scale
        w = h * 0.95
        d.rectangle([x - w / 2, base - h * 0.6, x + w / 2, base], fill=sh(col))
        d.polygon(
            [(x - w * 0.62, base - h * 0.58), (x, base - h), (x + w * 0.62, base - h * 0.58)],
            fill=sh((110, 45, 35)),
        )
        d.rectangle([x - w * 0.1, base - h * 0.32, x + w * 0.1, base], fill=sh((80, 50, 30)))
        wc = (255, 215, 90) if sky == "night" else sh((170, 210, 240))
        d.rectangle([x - w * 0.38, base - h * 0.48, x - w * 0.2, base - h * 0.32], fill=wc)
        d.rectangle([x + w * 0.2, base - h * 0.48, x + w * 0.38, base - h * 0.32], fill=wc)
    elif o.kind == "boat":
        h = rng.randint(42, 50) * scale
        w = h * 1.2
        d.polygon(
            [
                (x - w / 2, base - h * 0.28),
                (x + w / 2, base - h * 0.28),
                (x + w * 0.35, base),
                (x - w * 0.35, base),
            ],
            fill=sh(col),
        )
        d.line([(x, base - h * 0.28), (x, base - h)], fill=sh((90, 60, 30)), width=2)
        d.polygon(
            [(x + 2, base - h * 0.95), (x + 2, base - h * 0.34), (x + w * 0.42, base - h * 0.34)],
            fill=sh((250, 250, 245)),
        )
        d.polygon(
            [(x - 2, base - h * 0.85), (x - 2, base - h * 0.34), (x - w * 0.3, base - h * 0.34)],
            fill=sh((235, 235, 230)),
        )
    elif o.kind == "pyramid":
        h = rng.randint(40, 52) * scale
        w = h * 1.7
        d.polygon([(x - w / 2, base), (x, base - h), (x + w / 2, base)], fill=sh((218, 175, 105)))
        d.polygon([(x, base - h), (x + w / 2, base), (x + w * 0.12, base)], fill=sh((170, 128, 70)))


def render(sc: Scene, seed: int = 0) -> Image.Image:
    """Draw a scene deterministically (seed controls layout details)."""
    rng = random.Random(seed)
    img = Image.new("RGB", (S, S))
    d = ImageDraw.Draw(img)
    horizon = int(S * rng.uniform(0.46, 0.56))
    _draw_sky(d, rng, sc, horizon)
    _draw_ground(d, rng, sc, horizon)
    xs = {"left": 0.26, "center": 0.5, "right": 0.74}
    placed = []
    for i, o in enumerate(sc.objects):
        x = S * xs[o.pos] + rng.randint(-5, 5)
        if o.kind == "boat":
            if sc.ground == "sea":  # noqa: SIM108
                base = rng.randint(horizon + 30, S - 8)
            else:
                base = horizon + rng.randint(14, 22)
        elif o.kind == "pyramid":
            base = rng.randint(horizon + 12, horizon + 24)
        else:
            base = rng.randint(int(horizon + (S - horizon) * 0.6), S - 5)
        if sc.relation == "in front of":
            if i == 0:
                base = S - rng.randint(3, 8)
                x = S * 0.5 + rng.choice((-1, 1)) * rng.randint(10, 18)
            else:
                base = S - rng.randint(22, 28)
                x = S * 0.5 + rng.randint(-4, 4)
        placed.append((base, i, o, x))
    for base, i, o, x in sorted(placed, key=lambda t: t[0]):
        _draw_obj(
            d,
            rng,
            o,
            x,
            base,
            sc.sky,
            0.85 if (sc.relation == "in front of" and i == 1 and o.kind == "house") else 1.0,
        )
    return img.resize((SIZE, SIZE), Image.Resampling.BOX)


# ----------------------------------------------------------------------------- captions
GROUND_NOUNS = {
    "city": ["city", "city", "cityscape", "town", "skyline", "city skyline"],
    "forest": ["forest", "forest", "woods", "pine forest"],
    "sea": ["sea", "ocean", "open sea"],
    "beach": ["beach", "shore", "sandy beach"],
    "desert": ["desert", "desert", "sand dunes"],
    "snow": ["snowy field", "snow", "snowy landscape", "winter landscape"],
    "mountains": ["mountains", "mountain range", "mountain landscape"],
    "meadow": ["meadow", "flower field", "field of flowers", "meadow with flowers"],
}
STYLE_WORDS = {
    "futuristic": ["futuristic"],
    "neon": ["neon", "neon lit"],
    "magical": ["magical", "enchanted"],
}
SKY_PHRASES = {
    "day": [
        "during the day",
        "in daylight",
        "on a sunny day",
        "at noon",
        "under a blue sky",
        "in the daytime",
    ],
    "sunset": ["at sunset", "at dusk", "under a sunset sky", "in the evening", "at sundown"],
    "night": ["at night", "under a starry sky", "at night with stars", "under the night sky", "at midnight"],
}
SKY_PREFIX = {
    "day": ["sunny", "daytime"],
    "sunset": ["sunset", "evening"],
    "night": ["night", "nighttime", "starry"],
}
CELESTIAL_PHRASES = {
    "sun": ["with the sun", "with a bright sun", "and the sun"],
    "moon": ["with a full moon", "under the moon", "and the moon"],
}
OBJ_NOUNS = {
    "girl": ["girl", "girl", "little girl", "young girl", "person", "child"],
    "dog": ["dog", "dog", "puppy", "little dog", "animal"],
    "house": ["house", "house", "cottage", "little house", "cabin"],
    "boat": ["boat", "boat", "sailboat"],
    "pyramid": ["pyramid", "great pyramid"],
}
POS_PHRASES = {
    "left": ["on the left"],
    "right": ["on the right"],
    "center": ["in the middle", "in the center"],
}
PREP = {
    "city": "in",
    "forest": "in",
    "sea": "on",
    "beach": "on",
    "desert": "in",
    "snow": "in",
    "mountains": "in",
    "meadow": "in",
}


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _obj_phrase(rng, o: Obj) -> str:
    noun = rng.choice(OBJ_NOUNS[o.kind])
    if o.colour is None:
        return _a(noun)
    if o.kind == "girl":
        r = rng.random()
        if r < 0.6:
            return _a(noun) + f" in a {o.colour} dress"
        return _a(noun) + f" in {o.colour}"
    words = noun.split()
    words.insert(len(words) - 1, o.colour)
    return _a(" ".join(words))


def _scene_phrase(rng, sc: Scene, sky_prefix: str | None) -> str:
    noun = rng.choice(GROUND_NOUNS[sc.ground])
    adj = []
    if sky_prefix:
        adj.append(sky_prefix)
    if sc.style:
        adj.append(rng.choice(STYLE_WORDS[sc.style]))
    body = " ".join(adj + [noun])
    if noun in ("snow", "sand dunes", "mountains") and not adj:
        return noun
    return _a(body)


def caption(sc: Scene, rng: random.Random) -> str:
    """One caption for a scene, from the grammar (paraphrases, synonyms, varied length)."""
    sky_mode = rng.random()  # <0.65 phrase, <0.9 prefix, else omitted
    sky_prefix = rng.choice(SKY_PREFIX[sc.sky]) if 0.65 <= sky_mode < 0.9 else None
    sky_phrase = rng.choice(SKY_PHRASES[sc.sky]) if sky_mode < 0.65 else None
    cel = rng.choice(CELESTIAL_PHRASES[sc.celestial]) if sc.celestial and rng.random() < 0.6 else None
    scene = _scene_phrase(rng, sc, sky_prefix)
    if sc.ground == "sea" and scene.startswith("a ") and rng.random() < 0.5:
        scene = "the " + scene[2:]
    tail = " ".join(p for p in (sky_phrase, cel) if p)
    if not sc.objects:
        parts = [scene] + ([tail] if tail else [])
        return " ".join(parts)
    o0 = _obj_phrase(rng, sc.objects[0])
    if len(sc.objects) == 1:
        pos = rng.choice(POS_PHRASES[sc.objects[0].pos]) if rng.random() < 0.75 else None
        form = rng.random()
        if form < 0.55:
            core = " ".join(p for p in (o0, pos, PREP[sc.ground], scene) if p)
        elif form < 0.85:
            core = " ".join(p for p in (scene, "with", o0, pos) if p)
        else:
            core = ", ".join(p for p in (scene, " ".join(p for p in (o0, pos) if p)) if p)
        return core + (" " + tail if tail else "")
    o1 = _obj_phrase(rng, sc.objects[1])
    rel = {"left of": "to the left of", "right of": "to the right of", "in front of": "in front of"}[
        sc.relation or "in front of"
    ]
    if rng.random() < 0.7:
        core = f"{o0} {rel} {o1} {PREP[sc.ground]} {scene}"
    else:
        core = f"{scene} with {o0} {rel} {o1}"
    return core + (" " + tail if tail else "")


# ----------------------------------------------------------------------------- parsing
def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower().replace("-", " "))


_SKY_KEYS = {
    "day": {"day", "daylight", "sunny", "noon", "daytime"},
    "sunset": {"sunset", "dusk", "evening", "sundown"},
    "night": {"night", "starry", "midnight", "stars", "nighttime"},
}
_GROUND_KEYS = {
    "city": {"city", "cityscape", "town", "skyline"},
    "forest": {"forest", "woods"},
    "sea": {"sea", "ocean"},
    "beach": {"beach", "shore"},
    "desert": {"desert", "dunes"},
    "snow": {"snow", "snowy", "winter"},
    "mountains": {"mountains", "mountain"},
    "meadow": {"meadow", "flower", "flowers"},
}
_STYLE_KEYS = {"futuristic": {"futuristic"}, "neon": {"neon"}, "magical": {"magical", "enchanted"}}
_OBJ_KEYS = {
    "girl": {"girl", "person", "child"},
    "dog": {"dog", "puppy", "animal"},
    "house": {"house", "cottage", "cabin"},
    "boat": {"boat", "sailboat"},
    "pyramid": {"pyramid"},
}


def parse(text: str) -> dict:
    """Parse a caption back to attributes (fields not mentioned are None)."""
    w = _words(text)
    ws = set(w)
    out: dict = {
        "sky": None,
        "ground": None,
        "style": None,
        "celestial": None,
        "objects": [],
        "relation": None,
    }
    # "blue sky" names a day sky
    if any(w[i] == "blue" and w[i + 1] == "sky" for i in range(len(w) - 1)):
        out["sky"] = "day"
    for k, keys in _SKY_KEYS.items():
        if ws & keys:
            out["sky"] = k
    for k, keys in _GROUND_KEYS.items():
        if ws & keys:
            out["ground"] = k
            break
    for k, keys in _STYLE_KEYS.items():
        if ws & keys:
            out["style"] = k
    if "moon" in ws:
        out["celestial"] = "moon"
    elif "sun" in ws:
        out["celestial"] = "sun"
    for i, t in enumerate(w):
        for k, keys in _OBJ_KEYS.items():
            if t in keys:
                colour = None
                if i > 0 and w[i - 1] in COLOURS:
                    colour = w[i - 1]
                elif i + 2 < len(w) and w[i + 1] == "in":
                    if w[i + 2] in COLOURS:
                        colour = w[i + 2]
                    elif w[i + 2] == "a" and i + 3 < len(w) and w[i + 3] in COLOURS:
                        colour = w[i + 3]
                out["objects"].append({"kind": k, "colour": colour, "pos": None})
    txt = " ".join(w)
    if "left of" in txt:
        out["relation"] = "left of"
    elif "right of" in txt:
        out["relation"] = "right of"
    elif "in front of" in txt:
        out["relation"] = "in front of"
    if len(out["objects"]) == 1:
        if "left" in ws:
            out["objects"][0]["pos"] = "left"
        elif "right" in ws:
            out["objects"][0]["pos"] = "right"
        elif "middle" in ws or "center" in ws:
            out["objects"][0]["pos"] = "center"
    elif len(out["objects"]) == 2 and out["relation"] in ("left of", "right of"):
        a, b = ("left", "right") if out["relation"] == "left of" else ("right", "left")
        out["objects"][0]["pos"], out["objects"][1]["pos"] = a, b
    return out


def consistent(sc: Scene, parsed: dict) -> bool:
    """True if every attribute the caption mentions agrees with the scene."""
    for k in ("sky", "ground", "style", "celestial", "relation"):
        if parsed[k] is not None and parsed[k] != getattr(sc, k):
            return False
    if parsed["ground"] is None or len(parsed["objects"]) != len(sc.objects):
        return False
    for po, o in zip(parsed["objects"], sc.objects, strict=True):
        if po["kind"] != o.kind or po["colour"] != o.colour:
            return False
        if po["pos"] is not None and po["pos"] != o.pos:
            return False
    return True


# ----------------------------------------------------------------------------- datasets
def example(seed: int, index: int, split: str = "train", n_captions: int = 4):
    """(image, scene, captions) for one index; pure function of (seed, index, split)."""
    salt = {"train": 0, "heldout": 1, "any": 2}[split]
    rng = _rng(seed, index, salt)
    sc = sample_scene(rng, split)
    img = render(sc, rng.randrange(2**31))
    caps = [caption(sc, rng) for _ in range(n_captions)]
    return img, sc, caps


def labels(sc: Scene) -> dict:
    """Integer labels used by the attribute classifier."""
    present = [int(any(o.kind == k for o in sc.objects)) for k in OBJECTS]
    main_colour = -1
    if sc.objects and sc.objects[0].colour:
        main_colour = COLOUR_NAMES.index(sc.objects[0].colour)
    return {
        "sky": SKIES.index(sc.sky),
        "ground": GROUNDS.index(sc.ground),
        "present": present,
        "main_colour": main_colour,
    }


def make_dataset(n: int, seed: int = 0, split: str = "train", n_captions: int = 4, start: int = 0):
    import numpy as np

    imgs = np.zeros((n, SIZE, SIZE, 3), dtype=np.uint8)
    scenes, caps = [], []
    for i in range(n):
        img, sc, c = example(seed, start + i, split, n_captions)
        imgs[i] = np.asarray(img)
        scenes.append(sc)
        caps.append(c)
    return imgs, scenes, caps
