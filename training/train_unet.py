"""Stage 4: train the UNet2DConditionModel on VAE latents, conditioned on the
frozen mini-CLIP text tower (Stable Diffusion's way), or, with
``--text-encoder joint``, on a text encoder of the same shape trained from
scratch together with the U-Net (for the comparison in the model card).

Epsilon prediction, SD scaled-linear betas (0.00085..0.012, 1000 steps), 10 %
caption dropout (empty prompt) for classifier-free guidance, min-SNR(5)
weighting, EMA weights, offset noise (--offset-noise, see below).

Offset noise: the latent is only 16x16, so the per-channel mean of a standard
normal starting latent has std 1/16, while at t=999 the signal is scaled by
sqrt(alpha_bar)=0.068; the mean of the starting noise is then as large as the
mean of the image it stands for. A model trained on plain noise reads that
random mean as the image's overall colour and lets it, rather than the prompt,
pick the sky (measured: with zero-mean starting noise, "day" prompts on desert,
beach and snow rendered a day sky 10 times in 48). Adding a per-sample,
per-channel constant to the training noise (Guttenberg 2023) makes the noise's
mean carry no information about the image, so the model takes the global colour
from the prompt. Epsilon prediction and the scaled-linear schedule stay as in
Stable Diffusion; inference is unchanged. The release trains on plain noise,
then fine-tunes with --offset-noise 0.3 --init-from (train_all.py); 0.1 fixed
only part of it (model card).

Resumable (OUT/ckpt.pt), progress line, sample grids every --sample-every steps
in OUT/ (--out, default data/mini/unet/).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import common

GRID_PROMPTS = [
    "a futuristic cityscape",
    "a girl in a magical forest",
    "a city at night with a full moon",
    "a red house in a snowy landscape during the day",
    "a boat on the sea at sunset",
    "a pyramid in the desert",
    "a brown dog on the left in a meadow",
    "mountains at night",
]


def encode_latents(vae, imgs, batch=256):
    mus, sds = [], []
    with torch.no_grad():
        for i in range(0, len(imgs), batch):
            d = vae.encode(common.to_tensor(imgs[i : i + batch])).latent_dist
            mus.append(d.mean.half())
            sds.append(d.std.half())
            if (i // batch) % 10 == 0:
                print(f"[latents] {i}/{len(imgs)}", flush=True)
    return torch.cat(mus), torch.cat(sds)


@torch.no_grad()
def sample_grid(unet, vae, te, tok, path, seed=0, steps=25, cfg=5.0):
    from diffusers import DDIMScheduler

    sch = DDIMScheduler.from_config(common.scheduler_config())
    sch.set_timesteps(steps)
    ids = tok(GRID_PROMPTS + [""], padding="max_length", max_length=77, return_tensors="pt").input_ids
    emb = te(ids)[0]
    cond, unc = emb[:-1], emb[-1:].expand(len(GRID_PROMPTS), -1, -1)
    g = torch.Generator().manual_seed(seed)
    lat = torch.randn(len(GRID_PROMPTS), 4, 16, 16, generator=g)
    unet.eval()
    for t in sch.timesteps:
        e = unet(torch.cat([lat, lat]), t, encoder_hidden_states=torch.cat([unc, cond])).sample
        eu, ec = e.chunk(2)
        lat = sch.step(eu + cfg * (ec - eu), t, lat).prev_sample
    unet.train()
    img = vae.decode(lat / vae.config.scaling_factor).sample
    common.save_grid(img, path, nrow=8, scale=3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--max-minutes", type=float, default=1e9)
    ap.add_argument("--sample-every", type=int, default=300)
    ap.add_argument("--text-encoder", choices=("frozen", "joint"), default="frozen")
    ap.add_argument(
        "--stop-at", type=int, default=None, help="stop (and save final/) at this step; the LR schedule stays"
    )
    ap.add_argument("--out", default=str(common.DATA / "unet"))
    ap.add_argument(
        "--offset-noise",
        type=float,
        default=0.0,
        help="std of the per-channel constant added to the training noise (0 = plain noise; "
        "the release fine-tunes with 0.3)",
    )
    ap.add_argument("--init-from", type=Path, help="start from this U-Net directory (a fine-tune)")
    ap.add_argument(
        "--keep-at",
        type=int,
        nargs="*",
        default=[1000],
        help="also keep the EMA weights of these steps (out/ema_NNNNN), for equal-compute comparisons",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vae = AutoencoderKL.from_pretrained(common.DATA / "vae" / "final").eval()
    clip_dir = common.DATA / "clip" / "final"
    tok = CLIPTokenizer.from_pretrained(clip_dir)
    te = CLIPTextModel.from_pretrained(clip_dir).eval()
    te.requires_grad_(False)
    joint = args.text_encoder == "joint"
    if joint:  # same architecture and tokenizer, fresh weights, trained with the U-Net
        torch.manual_seed(args.seed + 1)
        te = CLIPTextModel(te.config).train()
    imgs, caps, _ = common.load_world("train", seed=args.seed)
    lat_path = common.DATA / "vae" / "latents.pt"  # the VAE stage deletes it when it writes a new VAE
    if lat_path.exists():
        mu, sd = torch.load(lat_path)
    else:
        mu, sd = encode_latents(vae, imgs)
        torch.save((mu, sd), lat_path)
    sf = vae.config.scaling_factor
    ncap = len(caps[0])
    flat = [c for cs in caps for c in cs]
    all_ids = tok(
        flat, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    ).input_ids.to(torch.int32)
    empty_ids = tok([""], padding="max_length", max_length=77, return_tensors="pt").input_ids
    torch.manual_seed(args.seed)
    unet = (
        UNet2DConditionModel.from_pretrained(args.init_from, torch_dtype=torch.float32)
        if args.init_from
        else UNet2DConditionModel(**common.unet_config())
    )
    trained = torch.nn.ModuleDict({"unet": unet, "te": te}) if joint else torch.nn.ModuleDict({"unet": unet})
    ema = copy.deepcopy(trained).eval()
    ema.requires_grad_(False)
    print(f"unet params {sum(p.numel() for p in unet.parameters()) / 1e6:.3f}M", flush=True)
    opt = torch.optim.AdamW(trained.parameters(), lr=args.lr, weight_decay=0.01)
    sched = DDPMScheduler.from_config(common.scheduler_config())
    acp = sched.alphas_cumprod
    snr = acp / (1 - acp)
    step = 0
    ck = out / "ckpt.pt"
    if ck.exists():
        st = torch.load(ck, weights_only=False)
        trained.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        print(f"resumed at step {step}", flush=True)
    g = torch.Generator().manual_seed(args.seed * 1000 + step)
    prog = common.Progress(args.steps, step, "unet")
    t0 = time.time()
    run = None
    ema_params = list(ema.parameters())
    params = list(trained.parameters())
    end = min(args.steps, args.stop_at or args.steps)
    while step < end:
        idx = torch.randint(0, len(mu), (args.batch,), generator=g)
        cj = torch.randint(0, ncap, (args.batch,), generator=g)
        ids = all_ids[idx * ncap + cj].long()
        drop = torch.rand(args.batch, generator=g) < 0.1
        ids[drop] = empty_ids
        z0 = (mu[idx].float() + sd[idx].float() * torch.randn(args.batch, 4, 16, 16, generator=g)) * sf
        noise = torch.randn(z0.shape, generator=g)
        if args.offset_noise:
            noise = noise + args.offset_noise * torch.randn(args.batch, 4, 1, 1, generator=g)
        t = torch.randint(0, 1000, (args.batch,), generator=g)
        zt = sched.add_noise(z0, noise, t)
        with torch.set_grad_enabled(joint):
            cond = te(ids)[0]
        for pg in opt.param_groups:
            pg["lr"] = common.cosine_lr(step, args.steps, args.lr, warmup=100)
        pred = unet(zt, t, encoder_hidden_states=cond).sample
        w = torch.clamp(snr[t], max=5.0) / snr[t]
        loss = (F.mse_loss(pred, noise, reduction="none").mean((1, 2, 3)) * w).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        d = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1 - d)
        run = loss.item() if run is None else 0.97 * run + 0.03 * loss.item()
        if step % 25 == 0:
            print(prog.line(step, loss=run, lr=opt.param_groups[0]["lr"]), flush=True)
        stop = (time.time() - t0) / 60 > args.max_minutes
        if step % 200 == 0 or step == end or stop:
            common.save_ckpt(
                ck, model=trained.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), step=step
            )
        if step % args.sample_every == 0 or step == end or stop:
            sample_grid(ema["unet"], vae, ema["te"] if joint else te, tok, out / f"samples_{step:05d}.png")
        if step in args.keep_at:
            ema["unet"].save_pretrained(out / f"ema_{step:05d}")
            if joint:
                ema["te"].save_pretrained(out / f"ema_{step:05d}_text_encoder")
        if stop:
            print("time budget reached, stopping (resumable)", flush=True)
            break
    ema["unet"].save_pretrained(out / "final")
    if joint:
        ema["te"].save_pretrained(out / "final_text_encoder")
    print(f"done step {step} in {(time.time() - t0) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
