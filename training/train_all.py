"""Retrain all of Segue-mini from a seed (what `make train-mini` runs).

Stages (each resumable: a stage whose final output exists is skipped, an interrupted
stage resumes from its checkpoint under data/mini/):
  1. tokenizer (seconds)
  2. mini CLIP, 2 threads                                     (~21 min on 2 cores)
  3. VAE, 2 threads, bfloat16 autocast                        (~26 min)
  4. latents + U-Net on the frozen CLIP text tower, 2 threads (~65 min)
  5. offset-noise fine-tune of that U-Net (600 steps, offset 0.3) (~9 min)
  6. export to models/segue-mini (fp16 safetensors)
  7. evaluation (attribute classifier, held-out captions)    (~6 min)
About 2 h 15 min on 2 otherwise idle cores.
Logs: data/mini/{vae,clip,unet,unet_offset,eval}.log; sample grids in data/mini/{vae,unet,unet_offset}/.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from . import common

PY = sys.executable


def run(args, log):
    print("$", " ".join(args), ">", log, flush=True)
    with open(log, "a") as f:
        return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, cwd=common.ROOT)


def stage(module_args, log):
    """Run one training stage (python -m ...) to completion; its output goes to `log`."""
    if run([PY, "-m", *module_args], log).wait():
        sys.exit(f"{module_args[0]} failed, see {log}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clip-steps", type=int, default=1200)
    ap.add_argument("--vae-steps", type=int, default=3400)
    ap.add_argument("--vae-minutes", type=float, default=30)
    ap.add_argument("--unet-steps", type=int, default=4500)
    ap.add_argument("--unet-minutes", type=float, default=70)
    ap.add_argument("--offset-steps", type=int, default=600)
    ap.add_argument("--offset-noise", type=float, default=0.3)
    ap.add_argument("--no-export", action="store_true")
    a = ap.parse_args()
    d = common.DATA
    d.mkdir(parents=True, exist_ok=True)
    s = str(a.seed)
    if not (d / "tokenizer" / "vocab.json").exists():
        subprocess.check_call([PY, "-m", "training.tokenizer", str(d / "tokenizer")], cwd=common.ROOT)
    # One stage at a time with both cores: on 2 cores, two concurrent 1-thread trainings finish no
    # sooner than the same two run one after the other with 2 threads each, and the order is simpler.
    if not (d / "clip" / "final").exists():
        stage(
            ["training.train_clip", "--steps", str(a.clip_steps), "--seed", s, "--threads", "2"],
            d / "clip.log",
        )
    if not (d / "vae" / "final").exists():
        stage(
            [
                "training.train_vae",
                "--steps",
                str(a.vae_steps),
                "--seed",
                s,
                "--threads",
                "2",
                "--max-minutes",
                str(a.vae_minutes),
            ],
            d / "vae.log",
        )
    if not (d / "unet" / "final").exists():
        stage(
            [
                "training.train_unet",
                "--steps",
                str(a.unet_steps),
                "--seed",
                s,
                "--threads",
                "2",
                "--max-minutes",
                str(a.unet_minutes),
            ],
            d / "unet.log",
        )
    if not (d / "unet_offset" / "final").exists():
        stage(
            [
                "training.train_unet",
                "--init-from",
                str(d / "unet" / "final"),
                "--out",
                str(d / "unet_offset"),
                "--steps",
                str(a.offset_steps),
                "--lr",
                "3e-4",
                "--offset-noise",
                str(a.offset_noise),
                "--seed",
                s,
                "--threads",
                "2",
            ],
            d / "unet_offset.log",
        )
    if a.no_export:
        return
    subprocess.check_call([PY, "-m", "training.export"], cwd=common.ROOT)
    p = run([PY, "-m", "training.evaluate"], d / "eval.log")
    p.wait()
    print((d / "eval.log").read_text()[-1500:])


if __name__ == "__main__":
    main()
