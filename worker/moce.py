"""MoCE's switch step search for one keyframe: probe renders, the Multi-Concept Disparity, a binary search.

A probe at N renders the keyframe's own frame as MoCE would (N steps with the first concept A alone, the
rest with the keyframe's full prompt) at the transition's settings, once per probe seed. The model's CLIP
(Segue-mini's clip/, else SEGUE_SCORER_CLIP) scores each image:

    D(N) = mean over probe seeds of S(M, A) - S(M, B),  S(M, X) = max(CLIPScore(M, X), CLIPScore(M, desc. X))

core.moce.search_switch_step halves [0, steps] on the sign of D until |D| <= SEGUE_MOCE_THRESHOLD or
core.moce.max_probes(steps) probes are spent, and keeps the probe with the smallest |D|. Each probe's
renders are stored as one thumbnail in the frame store; the trace grows as probes finish. The search is
claimed under a lease (worker/lease.py `claim_job`): a second copy of the task (a redelivery, the reaper's
requeue racing a slow worker) takes nothing, only the holder writes the trace and the result, and a
worker that dies lets the lease run out so the reaper queues the search again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.moce import Probe, concept_score, max_probes, search_switch_step
from core.params import PixelSettings
from core.statuses import Status
from infra.config import get_settings
from infra.db import new_session
from infra.storage import get_store
from infra.tables import ConceptSearch, utcnow
from services.jobs import SEARCHES
from services.rendering import plan_waiting
from worker import lease
from worker.images import png

log = logging.getLogger(__name__)

THUMBNAIL_HEIGHT = 96
_clips: dict[str, Any] = {}


class NoClip(Exception):
    """The model has no CLIP to measure concepts with."""


def clip_for(engine: Any) -> Any:
    """The model's CLIP scorer (loaded once per location): its own clip/ folder, else SEGUE_SCORER_CLIP."""
    from engine.scorers import ClipScorer, clip_location
    from worker.scoring import scorers_for

    settings = get_settings()
    folder = Path(engine.folder) if getattr(engine, "folder", None) else None
    location = clip_location(folder, settings.scorer_clip)
    # The frame scorers already hold this CLIP (same location) when scoring with it: don't load it twice.
    loaded = next((s for s in scorers_for(engine) if s.name == "clip"), None)
    if loaded is not None:
        _clips.setdefault(location, loaded)
    if location not in _clips:
        try:
            _clips[location] = ClipScorer(location, device=engine.pipe.unet.device)
        except (FileNotFoundError, OSError) as exc:
            raise NoClip(
                f"model {engine.model_name!r} has no CLIP to measure the concepts with: it ships no clip/ "
                f"folder and {location!r} (SEGUE_SCORER_CLIP) is not on this machine ({exc}). Give the "
                "keyframe a switch step number instead of \u201cauto\u201d, or set SEGUE_SCORER_CLIP to a "
                "CLIP directory or a hub id in the local cache"
            ) from None
    return _clips[location]


def _strip(images: list[Any]) -> Any:
    """The probe's images side by side, THUMBNAIL_HEIGHT pixels high."""
    import PIL.Image

    scaled = [
        i.convert("RGB").resize(
            (max(1, round(i.width * THUMBNAIL_HEIGHT / i.height)), THUMBNAIL_HEIGHT),
            PIL.Image.Resampling.BICUBIC if i.height < THUMBNAIL_HEIGHT else PIL.Image.Resampling.LANCZOS,
        )
        for i in images
    ]
    gap = 2
    strip = PIL.Image.new(
        "RGB", (sum(i.width for i in scaled) + gap * (len(scaled) - 1), THUMBNAIL_HEIGHT), "white"
    )
    x = 0
    for image in scaled:
        strip.paste(image, (x, 0))
        x += image.width + gap
    return strip


def thumbnail_key(input_key: str, step: int) -> str:
    return hashlib.sha256(f"moce-probe\n{input_key}\n{step}".encode()).hexdigest()


def disparities(scorer: Any, images: list[Any], concepts: dict[str, Any]) -> tuple[list[float], list[float]]:
    """S(M, A) and S(M, B) per image: the best CLIPScore against the concept and its description."""
    first, second = concepts["first"], concepts["second"]
    pairs = [(first, second)] * len(images)
    plain = scorer.score(images, pairs)
    described_pair = (
        concepts.get("first_description") or first,
        concepts.get("second_description") or second,
    )
    described = (
        scorer.score(images, [described_pair] * len(images)) if described_pair != (first, second) else plain
    )
    s_a = [concept_score([p.sim_a or 0.0, d.sim_a or 0.0]) for p, d in zip(plain, described, strict=True)]
    s_b = [concept_score([p.sim_b or 0.0, d.sim_b or 0.0]) for p, d in zip(plain, described, strict=True)]
    return s_a, s_b


def run_search(search_id: int) -> dict[str, Any]:
    return lease.run_job(SEARCHES, search_id, f"switch step search {search_id}", _run_search, {"probes": 0})


def _run_search(search_id: int, token: str) -> dict[str, Any]:
    from engine.pipeline import FrameRequest, get_engine

    settings = get_settings()
    started = time.perf_counter()

    def _set(**values: Any) -> None:  # only while this claim holds the search (else LeaseLost)
        lease.write_job(SEARCHES, search_id, token, **values)

    with new_session() as db:
        # Queued, or running under a lease that ran out (its worker died); a second copy takes nothing.
        claimed = lease.claim_job(
            db, SEARCHES, search_id, token, started_at=utcnow(), trace=[], error=None, finished_at=None
        )
        row = db.get(ConceptSearch, search_id)
        if not claimed or row is None:
            return {"probes": 0}
        inputs, key, transition_id = dict(row.inputs), row.input_key, row.transition_id

    trace: list[dict[str, Any]] = []
    try:
        engine = get_engine(inputs["model"], models_dir=settings.models_dir, device=settings.worker_device)
        scorer = clip_for(engine)
        concepts = inputs["concepts"]
        steps = int(inputs["steps"])
        params = PixelSettings(
            model=inputs["model"],
            negative_prompt=inputs["negative_prompt"],
            seed=inputs["seeds"][0],
            steps=steps,
            guidance_scale=inputs["guidance_scale"],
            width=inputs["width"],
            height=inputs["height"],
            scheduler=inputs["scheduler"],
        )
        store = get_store()

        def probe(n: int) -> Probe:
            # The keyframe's own frame under MoCE: N steps with the first concept, then the full prompt.
            frames = [
                FrameRequest(
                    concepts["first"], inputs["prompt"], 1.0, seed_a=s, seed_b=s, switch_step=n or None
                )
                for s in inputs["seeds"]
            ]
            images = engine.render(params, frames)
            s_a, s_b = disparities(scorer, images, concepts)
            disparity = float(np.mean(np.array(s_a) - np.array(s_b)))
            thumb = thumbnail_key(key, n)
            store.write(thumb, png(_strip(images)))
            entry = {
                "step": n,
                "disparity": round(disparity, 3),
                "first": round(float(np.mean(s_a)), 3),
                "second": round(float(np.mean(s_b)), 3),
                "thumbnail_key": thumb,
            }
            trace.append(entry)
            _set(trace=list(trace))
            log.info("switch step search %s: N=%d D=%+.2f", search_id, n, disparity)
            return Probe(n, disparity, entry)

        threshold = float(inputs.get("threshold", settings.moce_threshold))
        budget = max_probes(steps)
        result = search_switch_step(probe, steps, threshold, budget=budget)
        details = {
            "converged": result.converged,
            "disparity": round(result.disparity, 3),
            "threshold": threshold,
            "budget": budget,
            "probes": len(result.trace),
            "probe_seeds": len(inputs["seeds"]),
            "seconds": round(time.perf_counter() - started, 2),
        }
        if not lease.finish_job(
            SEARCHES,
            search_id,
            token,
            Status.DONE,
            chosen_step=result.step,
            trace=list(trace),
            details=details,
            finished_at=utcnow(),
        ):
            raise lease.LeaseLost(f"switch step search {search_id} was taken over before it was stored")
        log.info(
            "switch step search %s: N=%d after %d probes (%s)", search_id, result.step, len(trace), details
        )
        _wake_renders(transition_id)
        return {"probes": len(trace), "chosen_step": result.step}
    except lease.LeaseLost:
        raise
    except Exception as exc:
        if not isinstance(exc, NoClip):
            log.exception("switch step search %s failed", search_id)
        message = str(exc) if isinstance(exc, NoClip) else f"{type(exc).__name__}: {exc}"
        lease.finish_job(
            SEARCHES,
            search_id,
            token,
            Status.FAILED,
            error=message,
            trace=list(trace),
            details={"seconds": round(time.perf_counter() - started, 2)},
            finished_at=utcnow(),
        )
        _wake_renders(transition_id)
        return {"probes": len(trace)}


def _wake_renders(transition_id: int) -> None:
    """Renders that waited for this search plan now: with its step, or failing with its error."""
    try:
        with new_session() as db:
            plan_waiting(db, transition_id)
    except Exception as exc:  # the reaper sends their planning again (queued renders without frames)
        log.warning("transition %s: could not wake the renders waiting for a search (%s)", transition_id, exc)
