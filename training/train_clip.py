"""Stage 1b: train the mini CLIP (text + vision towers) contrastively on the world.

Writes a CLIPModel + CLIPProcessor directory to data/mini/clip/final (tokenizer
from data/mini/tokenizer). Resumable (data/mini/clip/ckpt.pt), progress line,
periodic held-out retrieval accuracy.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import common

# Full CLIP context, padded with EOS as Stable Diffusion does: the U-Net reads all 77 hidden states,
# so every position embedding must be trained (captions themselves are < 35 tokens).
TEXT_LEN = 77


def feats(o) -> torch.Tensor:
    """get_*_features returns a tensor (transformers 4) or an output whose pooler_output is projected (5)."""
    return o if isinstance(o, torch.Tensor) else o.pooler_output


def image_batch(imgs: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(255.0)
    mean = torch.tensor(common.CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(common.CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def retrieval(model, tok, imgs, caps) -> tuple[float, float]:
    """image->text and text->image top-1 over a pool (a hit = caption of the same image)."""
    model.eval()
    ids = tok(
        [c[0] for c in caps], padding="max_length", max_length=TEXT_LEN, truncation=True, return_tensors="pt"
    ).input_ids
    ti = F.normalize(feats(model.get_text_features(input_ids=ids)), dim=-1)
    ii = F.normalize(feats(model.get_image_features(pixel_values=image_batch(imgs))), dim=-1)
    sim = ii @ ti.T
    # a retrieved caption counts as correct if it is textually identical to the true one
    texts = [c[0] for c in caps]
    i2t = np.mean([texts[j] == texts[i] for i, j in enumerate(sim.argmax(1).tolist())])
    t2i = np.mean([texts[j] == texts[i] for i, j in enumerate(sim.argmax(0).tolist())])
    model.train()
    return float(i2t), float(t2i)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-minutes", type=float, default=1e9)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from . import tokenizer as tokmod

    out = common.DATA / "clip"
    out.mkdir(parents=True, exist_ok=True)
    tdir = common.DATA / "tokenizer"
    tok = (
        tokmod.build(tdir, seed=args.seed)
        if not (tdir / "vocab.json").exists()
        else CLIPTokenizer.from_pretrained(tdir)
    )
    imgs, caps, _ = common.load_world("train", seed=args.seed)
    vimgs, vcaps, _ = common.load_world("any", n=512, seed=args.seed + 1)
    torch.manual_seed(args.seed)
    cfg = common.clip_configs(len(tok), tok.bos_token_id, tok.eos_token_id)
    model = CLIPModel(cfg)
    print(f"clip params {sum(p.numel() for p in model.parameters()) / 1e6:.3f}M", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    step = 0
    ck = out / "ckpt.pt"
    if ck.exists():
        st = torch.load(ck, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        print(f"resumed at step {step}", flush=True)
    # pre-tokenize all captions
    flat = [c for cs in caps for c in cs]
    ncap = len(caps[0])
    all_ids = tok(
        flat, padding="max_length", max_length=TEXT_LEN, truncation=True, return_tensors="pt"
    ).input_ids
    prog = common.Progress(args.steps, step, "clip")
    rng = random.Random(args.seed * 7919 + step)
    t0 = time.time()
    run = None
    model.train()
    while step < args.steps:
        idx = np.array(rng.sample(range(len(imgs)), args.batch))
        cj = np.array([rng.randrange(ncap) for _ in idx])
        ids = all_ids[idx * ncap + cj]
        x = image_batch(imgs[idx])
        for pg in opt.param_groups:
            pg["lr"] = common.cosine_lr(step, args.steps, args.lr, warmup=50)
        o = model(input_ids=ids, pixel_values=x)
        labels = torch.arange(len(idx))
        # texts identical to another in the batch are not negatives
        same = (ids.unsqueeze(1) == ids.unsqueeze(0)).all(-1) & ~torch.eye(len(idx), dtype=torch.bool)
        lpi = o.logits_per_image.masked_fill(same, -1e4)
        loss = (F.cross_entropy(lpi, labels) + F.cross_entropy(lpi.T, labels)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)
        step += 1
        run = loss.item() if run is None else 0.95 * run + 0.05 * loss.item()
        if step % 25 == 0:
            print(prog.line(step, loss=run, scale=model.logit_scale.exp().item()), flush=True)
        stop = (time.time() - t0) / 60 > args.max_minutes
        if step % 200 == 0 or step == args.steps or stop:
            common.save_ckpt(ck, model=model.state_dict(), opt=opt.state_dict(), step=step)
            i2t, t2i = retrieval(model, tok, vimgs[:256], vcaps[:256])
            print(f"[clip] step {step} held-out retrieval@256 i2t={i2t:.3f} t2i={t2i:.3f}", flush=True)
        if stop:
            print("time budget reached, stopping (resumable)", flush=True)
            break
    final = out / "final"
    model.save_pretrained(final)
    tokmod_save(tok, tdir, final)
    ip = CLIPImageProcessor(
        size={"shortest_edge": 64},
        crop_size={"height": 64, "width": 64},
        image_mean=list(common.CLIP_MEAN),
        image_std=list(common.CLIP_STD),
        do_convert_rgb=True,
    )
    ip.save_pretrained(final)
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(final)
    tokmod_save(tok, tdir, final)
    i2t, t2i = retrieval(model, tok, vimgs, vcaps)
    print(f"done step {step} held-out retrieval@512 i2t={i2t:.3f} t2i={t2i:.3f}", flush=True)


def tokmod_save(tok, tdir, dest):
    import shutil

    tok.save_pretrained(dest)
    for f in ("vocab.json", "merges.txt", "tokenizer_config.json", "tokenizer.json"):
        shutil.copy(tdir / f, dest / f)


if __name__ == "__main__":
    main()
