"""Retrain all of Segue-mini from a seed (what `make train-mini` runs).

Stages (each resumable: a stage whose final output exists is skipped, an interrupted
stage resumes from its checkpoint under data/mini/):
  1. tokenizer (seconds)
  2. VAE (1 thread) and mini CLIP (1 thread) concurrently   (~20 min on 2 shared cores)
  3. U-Net on frozen CLIP text tower (2 threads), concurrently with a
     decoder-only VAE fine-tune (1 thread)                     (~55 min)
  4. export to worker/models/segue-mini (fp16 safetensors)
  5. evaluation (attribute classifier, held-out captions)    (~5 min)
Logs: data/mini/{vae,clip,unet,eval}.log; sample grids in data/mini/{vae,unet}/.
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vae-steps", type=int, default=620)
    ap.add_argument("--clip-steps", type=int, default=600)
    ap.add_argument("--unet-steps", type=int, default=2800)
    ap.add_argument("--dec-steps", type=int, default=1500)
    ap.add_argument("--unet-minutes", type=float, default=80)
    ap.add_argument("--no-export", action="store_true")
    a = ap.parse_args()
    d = common.DATA
    d.mkdir(parents=True, exist_ok=True)
    s = str(a.seed)
    if not (d / "tokenizer" / "vocab.json").exists():
        subprocess.check_call([PY, "-m", "worker.mini.tokenizer", str(d / "tokenizer")], cwd=common.ROOT)
    procs = []
    if not (d / "vae" / "final").exists():
        procs.append(
            run(
                [
                    PY,
                    "-m",
                    "worker.mini.train_vae",
                    "--steps",
                    str(a.vae_steps),
                    "--seed",
                    s,
                    "--threads",
                    "1",
                ],
                d / "vae.log",
            )
        )
    if not (d / "clip" / "final").exists():
        procs.append(
            run(
                [
                    PY,
                    "-m",
                    "worker.mini.train_clip",
                    "--steps",
                    str(a.clip_steps),
                    "--seed",
                    s,
                    "--threads",
                    "1",
                ],
                d / "clip.log",
            )
        )
    if any(p.wait() for p in procs):
        sys.exit("stage 2 failed, see data/mini/vae.log / clip.log")
    procs = []
    if not (d / "unet" / "final").exists():
        procs.append(
            run(
                [
                    PY,
                    "-m",
                    "worker.mini.train_unet",
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
        )
    if not (d / "vae" / "final_dec").exists():
        # decoder-only fine-tune (encoder frozen, so the latent space the U-Net sees is unchanged)
        procs.append(
            run(
                [
                    PY,
                    "-m",
                    "worker.mini.train_decoder",
                    "--steps",
                    str(a.dec_steps),
                    "--seed",
                    s,
                    "--threads",
                    "1",
                    "--max-minutes",
                    str(a.unet_minutes - 5),
                ],
                d / "decoder.log",
            )
        )
    if any(p.wait() for p in procs):
        sys.exit("stage 3 failed, see data/mini/unet.log / decoder.log")
    if a.no_export:
        return
    subprocess.check_call([PY, "-m", "worker.mini.export"], cwd=common.ROOT)
    p = run([PY, "-m", "worker.mini.evaluate"], d / "eval.log")
    p.wait()
    print((d / "eval.log").read_text()[-1500:])


if __name__ == "__main__":
    main()
