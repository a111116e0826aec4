"""Evaluate Segue-mini.

1. Train an attribute classifier (small CNN, independent of the diffusion model)
   on real world images: sky (3), ground (8), object presence (5), main-object colour (8).
2. Its accuracy on real held-out world images = the reference row.
3. Render held-out captions with the committed pipeline (half from held-out
   sky/ground/object combinations never seen in training, half fresh scenes),
   classify, and score against the caption's attributes.
4. Mini-CLIP retrieval accuracy on real held-out images and on generated ones.
5. A text-embedding interpolation strip ("a futuristic cityscape" -> "a girl in a
   magical forest", fixed noise) and the classifier's city/forest probability along it.
6. Sky probes: which skies the generated images show for each named sky (confusion
   matrix); day prompts with zero-mean starting noise (does the prompt or the noise's
   mean set the overall colour?); prompts that name no sky (which skies, how much
   seeds differ).

Writes data/mini/eval/results.json and sample PNGs; prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import common, world

OUT = common.DATA / "eval"


class AttrNet(nn.Module):
    def __init__(self):
        super().__init__()
        ch = [32, 64, 128, 128]
        layers = [nn.Conv2d(3, 32, 4, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU()]  # 64 -> 32
        for a, b in zip(ch[:-1], ch[1:], strict=True):
            layers += [
                nn.Conv2d(a, b, 3, padding=1),
                nn.BatchNorm2d(b),
                nn.ReLU(),
                nn.Conv2d(b, b, 3, padding=1, stride=2),
                nn.BatchNorm2d(b),
                nn.ReLU(),
            ]
        self.body = nn.Sequential(*layers)  # 32 -> 4
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(128 * 16, 256), nn.ReLU(), nn.Dropout(0.2))
        self.sky = nn.Linear(256, 3)
        self.ground = nn.Linear(256, 8)
        self.present = nn.Linear(256, 5)
        self.colour = nn.Linear(256, len(world.COLOUR_NAMES))

    def forward(self, x):
        h = self.fc(self.body(x))
        return self.sky(h), self.ground(h), self.present(h), self.colour(h)


def _labels(scenes):
    L = [
        world.labels(world.Scene(**{**s, "objects": [world.Obj(**o) for o in s["objects"]]}))
        if isinstance(s, dict)
        else world.labels(s)
        for s in scenes
    ]
    return (
        torch.tensor([lab["sky"] for lab in L]),
        torch.tensor([lab["ground"] for lab in L]),
        torch.tensor([lab["present"] for lab in L]).float(),
        torch.tensor([lab["main_colour"] for lab in L]),
    )


def _augment(x, g):
    # robustness to decoder softness: random blur + noise (applied to real images only)
    if torch.rand(1, generator=g).item() < 0.5:
        k = torch.tensor([1.0, 2.0, 1.0])
        k = (k[:, None] * k[None, :]) / 16
        x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(3, 1, 3, 3).contiguous(), groups=3)
    return x + 0.03 * torch.randn(x.shape, generator=g)


def _classifier_key(steps, batch, seed) -> str:
    """What the cached classifier depends on: its settings, the world's source and its own code."""
    import hashlib
    import inspect

    h = hashlib.sha256(f"{steps}/{batch}/{seed}/{torch.__version__}".encode())
    h.update(Path(world.__file__).read_bytes())
    for obj in (AttrNet, _labels, _augment, train_classifier, common.load_world, common.cosine_lr):
        h.update(inspect.getsource(obj).encode())
    return h.hexdigest()[:16]


def train_classifier(steps=1200, batch=64, seed=0):
    """The attribute classifier, trained once per (settings, world, evaluation code) and cached.

    Seeded before the network is built, so that retraining it (a new machine, an emptied data/) gives
    the same weights and the same evaluation numbers (checked here on one CPU and torch build)."""
    key = _classifier_key(steps, batch, seed)
    path = OUT / f"attrnet_{key}.pt"
    torch.manual_seed(seed)
    net = AttrNet()
    if path.exists():
        net.load_state_dict(torch.load(path))
        return net.eval()
    imgs, _, scenes = common.load_world("train", seed=seed)
    ys = _labels(scenes)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(0, len(imgs), (batch,), generator=g)
        x = _augment(common.to_tensor(imgs[idx.numpy()]), g)
        for pg in opt.param_groups:
            pg["lr"] = common.cosine_lr(step, steps, 2e-3, warmup=50)
        s, gr, p, c = net(x)
        cl = ys[3][idx]
        m = cl >= 0
        loss = (
            F.cross_entropy(s, ys[0][idx])
            + F.cross_entropy(gr, ys[1][idx])
            + F.binary_cross_entropy_with_logits(p, ys[2][idx])
        )
        if m.any():
            loss = loss + F.cross_entropy(c[m], cl[m])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f"[attrnet] {step}/{steps} loss {loss.item():.3f} {time.time() - t0:.0f}s", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return net.eval()


@torch.no_grad()
def classify(net, imgs_uint8):
    outs = [net(common.to_tensor(imgs_uint8[i : i + 256])) for i in range(0, len(imgs_uint8), 256)]
    s, g, p, c = (torch.cat([o[k] for o in outs]) for k in range(4))
    return (
        s.argmax(1).numpy(),
        g.argmax(1).numpy(),
        torch.sigmoid(p).numpy(),
        c.argmax(1).numpy(),
        g.softmax(1).numpy(),
    )


def score(pred, targets):
    """targets: list of dict(sky, ground, main, colour) with None for unnamed."""
    s, g, p, c, _ = pred
    acc = {"sky": [], "ground": [], "object": [], "colour": []}
    for i, t in enumerate(targets):
        if t["sky"] is not None:
            acc["sky"].append(s[i] == world.SKIES.index(t["sky"]))
        if t["ground"] is not None:
            acc["ground"].append(g[i] == world.GROUNDS.index(t["ground"]))
        if t["main"] is not None:
            acc["object"].append(p[i][world.OBJECTS.index(t["main"])] > 0.5)
            if t["colour"] is not None:
                acc["colour"].append(c[i] == world.COLOUR_NAMES.index(t["colour"]))
    return {k: (float(np.mean(v)) if v else float("nan"), len(v)) for k, v in acc.items()}


def sky_confusion(pred, targets):
    """Rows: the sky the caption names; columns: the sky the classifier sees (order world.SKIES)."""
    cm = np.zeros((len(world.SKIES), len(world.SKIES)), dtype=int)
    for i, t in enumerate(targets):
        if t["sky"] is not None:
            cm[world.SKIES.index(t["sky"]), pred[0][i]] += 1
    return cm.tolist()


def eval_captions(n=200, seed=12345):
    """Held-out captions that name the sky: n/2 held-out combos, n/2 fresh scenes."""
    items = []
    for split, k in (("heldout", n // 2), ("any", n - n // 2)):
        for i in range(k):
            img, sc, _ = world.example(seed, i, split, 0)
            rng = random.Random(seed * 31 + i + (0 if split == "heldout" else 10**6))
            while True:
                cap = world.caption(sc, rng)
                pr = world.parse(cap)
                if pr["sky"] is not None:
                    break
            items.append((np.asarray(img), sc, cap, split))
    return items


def load_pipe(path=common.MODEL_DIR, scheduler="dpm"):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    from engine.pipeline import Engine

    pipe = Engine.load(str(path), device="cpu").pipe  # Segue's loader, as the app renders it
    cls = {"dpm": DPMSolverMultistepScheduler, "ddim": DDIMScheduler, "euler": EulerDiscreteScheduler}[
        scheduler
    ]
    pipe.scheduler = cls.from_config(pipe.scheduler.config)
    return pipe


@torch.no_grad()
def render(pipe, prompts, seed=0, steps=25, guidance=7.5, batch=16, latents=None):
    """uint8 images for the prompts; `latents` (one per prompt) replaces the seeded starting noise."""
    out = []
    for i in range(0, len(prompts), batch):
        g = torch.Generator().manual_seed(seed + i)
        r = pipe(
            prompts[i : i + batch],
            height=64,
            width=64,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=g,
            latents=None if latents is None else latents[i : i + batch].clone(),
            output_type="np",
        )
        out.append((r.images * 255).round().astype(np.uint8))
    return np.concatenate(out)


@torch.no_grad()
def reconstruct(vae, imgs_uint8):
    out = []
    for i in range(0, len(imgs_uint8), 64):
        x = common.to_tensor(imgs_uint8[i : i + 64]).to(vae.dtype)
        out.append(common.to_uint8(vae.decode(vae.encode(x).latent_dist.mode()).sample))
    return np.concatenate(out)


@torch.no_grad()
def clip_retrieval(clip_dir, imgs, caps):
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(str(clip_dir), torch_dtype=torch.float32).eval()
    proc = CLIPProcessor.from_pretrained(str(clip_dir))
    from PIL import Image

    ti = proc(text=caps, padding="max_length", max_length=77, return_tensors="pt")
    tf = model.get_text_features(input_ids=ti.input_ids)
    tf = tf if isinstance(tf, torch.Tensor) else tf.pooler_output
    ii = proc(images=[Image.fromarray(x) for x in imgs], return_tensors="pt")
    f = model.get_image_features(pixel_values=ii.pixel_values)
    f = f if isinstance(f, torch.Tensor) else f.pooler_output
    sim = F.normalize(f, dim=-1) @ F.normalize(tf, dim=-1).T
    top = sim.argmax(1).tolist()
    return float(np.mean([caps[j] == caps[i] for i, j in enumerate(top)]))


@torch.no_grad()
def interpolation(
    pipe, net, a="a futuristic cityscape", b="a girl in a magical forest", n=8, seed=7, steps=25, guidance=7.5
):
    ea, _ = pipe.encode_prompt(a, "cpu", 1, True, "")
    eb, neg = pipe.encode_prompt(b, "cpu", 1, True, "")
    g = torch.Generator().manual_seed(seed)
    lat = torch.randn(1, 4, 16, 16, generator=g).expand(n, -1, -1, -1).contiguous()
    ts = torch.linspace(0, 1, n).view(n, 1, 1)
    emb = (1 - ts) * ea + ts * eb
    r = pipe(
        prompt_embeds=emb,
        negative_prompt_embeds=neg.expand(n, -1, -1),
        latents=lat,
        height=64,
        width=64,
        num_inference_steps=steps,
        guidance_scale=guidance,
        output_type="np",
    )
    imgs = (r.images * 255).round().astype(np.uint8)
    gp = classify(net, imgs)[4]
    return imgs, gp[:, world.GROUNDS.index("city")], gp[:, world.GROUNDS.index("forest")]


FLAT_DAY_PROMPTS = ("a desert at noon", "a beach in daylight", "a snowy field during the day")
OPEN_SKY_PROMPTS = (
    "a futuristic cityscape",
    "a girl in a magical forest",
    "a boat on the sea",
    "a house in the mountains",
    "a desert",
    "a dog in a meadow",
    "a red house on a beach",
    "a snowy field",
)


def _sky_counts(net, imgs):
    return np.bincount(classify(net, imgs)[0], minlength=len(world.SKIES)).tolist()


@torch.no_grad()
def zero_mean_noise_probe(pipe, net, seeds=16, guidance=7.5):
    """Sky counts (day, sunset, night) for day prompts on flat grounds when the starting noise has
    zero per-channel mean: a model that takes the overall colour from the noise rather than the
    prompt renders these as sunsets."""
    lat = torch.randn(seeds, 4, 16, 16, generator=torch.Generator().manual_seed(100))
    lat = lat - lat.mean((2, 3), keepdim=True)
    return {
        p: _sky_counts(net, render(pipe, [p] * seeds, guidance=guidance, latents=lat))
        for p in FLAT_DAY_PROMPTS
    }


def open_sky_probe(pipe, net, seeds=16, guidance=7.5):
    """Where the prompt names no sky: which skies come out (counts per prompt), and how much renders of
    one prompt differ between seeds (mean absolute pixel difference over all seed pairs, 0-1)."""
    counts, spread = {}, []
    for p in OPEN_SKY_PROMPTS:
        imgs = render(pipe, [p] * seeds, seed=200, guidance=guidance)
        counts[p] = _sky_counts(net, imgs)
        x = imgs.astype(np.float32) / 255
        pairs = [(i, j) for i in range(seeds) for j in range(i + 1, seeds)]
        spread.append(np.mean([np.abs(x[i] - x[j]).mean() for i, j in pairs]))
    return {"sky_counts": counts, "seed_spread": round(float(np.mean(spread)), 4)}


def save_strip(imgs, path, scale=3, nrow=None):
    from PIL import Image

    nrow = nrow or len(imgs)
    rows = (len(imgs) + nrow - 1) // nrow
    h, w = imgs.shape[1:3]
    grid = np.zeros((rows * h, nrow * w, 3), dtype=np.uint8)
    for i, x in enumerate(imgs):
        grid[(i // nrow) * h : (i // nrow + 1) * h, (i % nrow) * w : (i % nrow + 1) * w] = x
    Image.fromarray(grid).resize((nrow * w * scale, rows * h * scale), Image.NEAREST).save(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=str(common.MODEL_DIR))
    ap.add_argument("--classifier-only", action="store_true")
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--out", default=str(OUT), help="where results.json and the sample strips go")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = train_classifier()
    items = eval_captions(args.n)
    real = np.stack([it[0] for it in items])
    targets = []
    for _, sc, cap, _ in items:
        pr = world.parse(cap)
        targets.append(
            {
                "sky": pr["sky"],
                "ground": pr["ground"],
                "main": sc.main,
                "colour": sc.objects[0].colour
                if sc.objects and pr["objects"] and pr["objects"][0]["colour"]
                else None,
            }
        )
    res = {"real": score(classify(net, real), targets)}
    if args.classifier_only:
        print(json.dumps(res, indent=1))
        return
    model = Path(args.model)
    pipe = load_pipe(model)
    # the ceiling the VAE sets: the same real images, encoded and decoded by the pipeline's VAE
    res["vae_reconstruction"] = score(classify(net, reconstruct(pipe.vae, real)), targets)
    caps = [it[2] for it in items]
    t0 = time.time()
    gen = render(pipe, caps, guidance=args.guidance)
    res["render_seconds_total"] = time.time() - t0
    res["guidance_scale"] = args.guidance
    pred = classify(net, gen)
    res["generated"] = score(pred, targets)
    res["generated_sky_confusion"] = sky_confusion(pred, targets)
    for split in ("heldout", "any"):
        m = [i for i, it in enumerate(items) if it[3] == split]
        res[f"generated_{split}"] = score(classify(net, gen[m]), [targets[i] for i in m])
        res[f"real_{split}"] = score(classify(net, real[m]), [targets[i] for i in m])
    res["clip_retrieval_real"] = clip_retrieval(model / "clip", real, caps)
    res["clip_retrieval_generated"] = clip_retrieval(model / "clip", gen, caps)
    res["clip_chance"] = float(np.mean([sum(c == d for d in caps) / len(caps) for c in caps]))
    save_strip(gen[:32], out / "heldout_generated.png", nrow=8)
    save_strip(real[:32], out / "heldout_real.png", nrow=8)
    (out / "heldout_captions.txt").write_text("\n".join(caps[:32]))
    strip, pc, pf = interpolation(pipe, net, guidance=args.guidance)
    save_strip(strip, out / "interpolation.png")
    res["interpolation_city_prob"] = pc.round(3).tolist()
    res["interpolation_forest_prob"] = pf.round(3).tolist()
    res["day_sky_with_zero_mean_noise"] = zero_mean_noise_probe(pipe, net, guidance=args.guidance)
    res["open_sky"] = open_sky_probe(pipe, net, guidance=args.guidance)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    print(
        "\n| attribute | real world images | real through the VAE | generated (all) "
        "| generated (held-out combos) | generated (fresh scenes) |"
    )
    print("|---|---|---|---|---|---|")
    for k in ("sky", "ground", "object", "colour"):
        r, v, gall, gh, ga = (
            res["real"][k],
            res["vae_reconstruction"][k],
            res["generated"][k],
            res["generated_heldout"][k],
            res["generated_any"][k],
        )
        print(f"| {k} | {r[0]:.1%} (n={r[1]}) | {v[0]:.1%} | {gall[0]:.1%} | {gh[0]:.1%} | {ga[0]:.1%} |")
    print("\nSky of generated images (rows: the caption's sky, columns: the classifier's)\n")
    print("| caption \\ seen | " + " | ".join(world.SKIES) + " |")
    print("|---" * (len(world.SKIES) + 1) + "|")
    for name, row in zip(world.SKIES, res["generated_sky_confusion"], strict=True):
        print(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    zm = res["day_sky_with_zero_mean_noise"]
    day = sum(c[0] for c in zm.values())
    n = sum(map(sum, zm.values()))
    print(f"\nDay prompts on flat grounds, zero-mean starting noise: {day} of {n} day")
    tot = np.sum(list(res["open_sky"]["sky_counts"].values()), axis=0)
    print(
        f"Prompts naming no sky: {dict(zip(world.SKIES, tot.tolist(), strict=True))}, "
        f"seed spread {res['open_sky']['seed_spread']:.3f}"
    )


if __name__ == "__main__":
    main()
