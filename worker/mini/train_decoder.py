"""Stage 3b (runs alongside CLIP or the U-Net): sharpen the VAE by fine-tuning only its decoder.

The encoder (and therefore the latent space, the scaling factor and the U-Net's
training targets) stays frozen, so this can run concurrently with U-Net training.
Input: data/mini/vae/final; output: data/mini/vae/final_dec (same config).
Resumable (data/mini/vae/dec_ckpt.pt), progress line, reconstruction grids.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from . import common
from .train_vae import edge_l1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-minutes", type=float, default=1e9)
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True, help="as in train_vae")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import AutoencoderKL

    out = common.DATA / "vae"
    vae = AutoencoderKL.from_pretrained(out / "final")
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    params = [p for n, p in vae.named_parameters() if n.startswith(("decoder.", "post_quant_conv."))]
    opt = torch.optim.AdamW(params, lr=args.lr)
    imgs, _, _ = common.load_world("train", seed=args.seed)
    step = 0
    ck = out / "dec_ckpt.pt"
    if ck.exists():
        st = torch.load(ck, weights_only=False)
        vae.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        print(f"resumed at step {step}", flush=True)
    fixed = common.to_tensor(imgs[:16])
    g = torch.Generator().manual_seed(args.seed * 1000 + 17 + step)
    prog = common.Progress(args.steps, step, "decoder")
    t0 = time.time()
    run = None
    while step < args.steps:
        idx = torch.randint(0, len(imgs), (args.batch,), generator=g)
        x = common.to_tensor(imgs[idx.numpy()])
        with torch.no_grad():
            z = vae.encode(x).latent_dist.sample(generator=g)
        for pg in opt.param_groups:
            pg["lr"] = common.cosine_lr(step, args.steps, args.lr, warmup=20)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            rec = vae.decode(z).sample.float()
        l1 = (rec - x).abs().mean()
        loss = l1 + 0.5 * edge_l1(rec, x) + 0.1 * F.mse_loss(rec, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        run = l1.item() if run is None else 0.98 * run + 0.02 * l1.item()
        if step % 25 == 0:
            print(prog.line(step, l1=run), flush=True)
        stop = (time.time() - t0) / 60 > args.max_minutes
        if step % 200 == 0 or step == args.steps or stop:
            common.save_ckpt(ck, model=vae.state_dict(), opt=opt.state_dict(), step=step)
            with torch.no_grad():
                r = vae.decode(vae.encode(fixed).latent_dist.mode()).sample
            common.save_grid(torch.cat([fixed, r]), out / f"dec_recon_{step:05d}.png")
        if stop:
            print("time budget reached, stopping (resumable)", flush=True)
            break
    vae.save_pretrained(out / "final_dec")
    with torch.no_grad():
        r = vae.decode(vae.encode(fixed).latent_dist.mode()).sample
    print(f"done step {step} recon L1 {(r - fixed).abs().mean().item():.4f}", flush=True)


if __name__ == "__main__":
    main()
