"""Throughput in one run, on the same frames: a naive diffusers loop, Segue's engine, trajectory sharing,
Segue end to end through its API, and 2 workers against 1.
One module per measurement (naive, engine, sharing, end_to_end), the shared helpers (common), the report
(report) and the command line (cli).

    python -m bench.throughput [--model segue-mini] [--frames 24] [--steps 25] [--size 64] [--seed 1]
                               [--batches 1 3 8] [--app-batch 3] [--threads 1] [--repeats 3] [--quick]
                               [--skip naive engine sharing app scaling] [--csv bench/results/throughput.csv]

Every part renders the founding transition ("a futuristic cityscape, vibrant and detailed" -> "a cheerful
girl in a magical forest", lerp of the text embeddings, one fixed noise latent from --seed, DPM-Solver++,
guidance 7.5):

1. naive loop: diffusers' StableDiffusionPipeline called once per frame, in index order, with
   prompt_embeds = the interpolated embedding, latents = the same noise, output_type="pil" (the way
   community scripts do it). The baseline for throughput, time to first frame and coverage.
2. Segue's engine (engine.pipeline.Engine.render) at each --batches size, coarse to fine (both ends, the
   middle, the quarters, ...), as the app orders them.
3. trajectory sharing (in_between "shared", k = shared_from_step, default half the steps) against full
   frames, through bench.methods' render / quality helpers: U-Net evaluations per in-between, smoothness
   (1 - Gini) and max jump of adjacent RMS pixel distances (core.metrics).
4. Segue end to end: the app in-process (fastapi TestClient) in embedded mode in a temp data dir, a real
   Celery worker subprocess; create the transition, POST a render, follow its SSE events until done.
   Wall time, frames/s, time to first frame, and the largest stretch of t still uncovered once 25 % of
   the frames have arrived.
5. distributed mode (Redis + PostgreSQL; a fresh database, Redis namespace and queue per run): the same
   render with 1 worker and with 2 workers, each pinned to one thread; beside it the machine's ceiling,
   1 and 2 bare engine processes (no app, broker or database) rendering the same frames at once.

Threads are pinned: this process runs torch on --threads threads (default 1) for parts 1-3 and sits idle
while the workers render; the embedded worker gets the same count (OMP_NUM_THREADS and
SEGUE_WORKER_THREADS), each distributed worker --scaling-threads (default 1). One thread by default because
on 2 cores shared with other work a 2-thread torch process stalls (up to 10x) whenever another process holds
a core; pass --threads 2 on a quiet machine. Every part runs --repeats times (default 3), interleaved, and
the median is reported with the min-max beside it. Prints Markdown tables, each figure beside its baseline
with the ratio, and whether each target of issue 11 is met; writes every figure as CSV to --csv. Seconds on a
shared machine are noisy: the load average is printed with them.
"""
