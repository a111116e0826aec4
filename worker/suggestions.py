"""Suggest intermediate prompts for one request: ask the suggester, keep what the model can use, probe and
rank each with the image model, store a thumbnail per suggestion, and fill the row's items as they rank.

Never fails for a bad answer: an unreachable endpoint or a model that cannot load falls back to the
templates (and says so in `details`); garbage gives fewer suggestions. It fails only when the image model
cannot render the probes (then `error` says why).

The request is claimed under a lease (worker/lease.py `claim_job`): a second copy of the task takes
nothing, only the holder writes items and the result, and a worker that dies lets the lease run out so
the reaper queues the request again (failed after `max_attempts` takes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import replace
from typing import Any

from core.params import PIXEL_FIELDS, PixelSettings
from core.statuses import Status
from infra.config import get_settings
from infra.db import new_session
from infra.storage import get_store
from infra.tables import Suggestion, Transition, utcnow
from services.jobs import SUGGESTIONS
from services.projects import current_revision
from services.suggestions import plan as plan_suggestions
from worker import captions, lease
from worker.images import png, thumbnail

log = logging.getLogger(__name__)

#: Probes per engine call: small batches, so the first ranked items show early.
PROBE_BATCH = 3


def pool_size(count: int) -> int:
    """Candidates probed per request: a few more than asked for, so the ranking has a choice."""
    return min(16, max(count + 3, 2 * count))


def thumbnail_key(settings_json: str, prompt: str) -> str:
    return hashlib.sha256(f"suggestion-probe\n{settings_json}\n{prompt}".encode()).hexdigest()


def _scorer_for(engine: Any) -> Any:
    """The render's own scorers (worker/scoring.py): CLIP when the model has one, else U-Net, else SSIM."""
    from engine.scorers import SsimScorer
    from worker.scoring import scorers_for

    # The U-Net scorer's name carries its block when the layer probe recorded one ("unet-up2-t500").
    scorers = {s.name.split("-")[0]: s for s in scorers_for(engine)}
    return scorers.get("clip") or scorers.get("unet") or scorers.get("ssim") or SsimScorer()


def _suggester(details: dict[str, Any]) -> Any:
    from engine.suggesters import TemplateSuggester, build_suggester
    from engine.suggesters.base import SuggesterError

    settings = get_settings()
    try:
        return build_suggester(
            settings.suggester,
            url=settings.suggest_url,
            model=settings.suggest_model,
            key=settings.suggest_key,
            cache_dir=settings.data_dir / "cache",
        )
    except SuggesterError as exc:
        details["fallback"] = f"{settings.suggester} suggester unavailable: {exc}"
        return TemplateSuggester()


def bridge_candidates(
    engine: Any,
    model: str,
    start: str,
    end: str,
    want: int,
    count: int,
    seed: int,
    keyframe_prompts: list[str],
    details: dict[str, Any],
) -> tuple[list[Any], list[Any], Any]:
    """Prompts bridging `start` -> `end` that the image model can use: the configured suggester's (a chat
    model writes `count` per answer, templates `want`), validated against the model's tokenizer and
    vocabulary, topped up from the templates to `want`. Returns (kept, rejected, what was proposed);
    `details` learns which suggester answered and how long it took."""
    from engine.suggesters import TemplateSuggester
    from engine.suggesters.base import SuggesterError
    from engine.suggesters.parse import validate
    from engine.suggesters.template import template_bridges
    from engine.suggesters.vocab import Vocabulary

    tokenizer = engine.pipe.tokenizer
    window = int(getattr(tokenizer, "model_max_length", 77) or 77)
    vocabulary = Vocabulary.for_model(model, tokenizer)
    suggester = _suggester(details)
    try:
        # A chat model writes `count` scenes per answer (and answers several times); templates `want`.
        asked = want if suggester.name == "template" else count
        proposed = suggester.suggest(start, end, asked, seed)
    except SuggesterError as exc:
        log.warning("bridges %r -> %r: %s; using templates", start[:60], end[:60], exc)
        details["fallback"] = str(exc)
        suggester = TemplateSuggester()
        proposed = suggester.suggest(start, end, want, seed)
    details["suggester"] = suggester.label
    details["generate_seconds"] = round(proposed.seconds, 2)
    timings = getattr(suggester, "timings", None)
    if timings:
        details["model_load"] = {k: round(v, 2) if isinstance(v, float) else v for k, v in timings.items()}

    # Keep what the image model can use; top up from the templates, so the ranking has a choice
    def count_tokens(text: str) -> int:
        return len(tokenizer(text).input_ids)

    kept, rejected = validate(
        proposed.prompts,
        keyframe_prompts,
        count_tokens=count_tokens,
        window=window,
        adapt=vocabulary.adapt if vocabulary is not None else None,
        source="template" if suggester.name == "template" else "llm",
    )
    if len(kept) < want and suggester.name != "template":
        more, more_rejected = validate(
            template_bridges(start, end, want),
            keyframe_prompts + [c.prompt for c in kept],
            count_tokens=count_tokens,
            window=window,
            adapt=vocabulary.adapt if vocabulary is not None else None,
            source="template",
        )
        kept += more[: max(0, want - len(kept))]
        rejected += more_rejected
    kept = kept[:want]
    return kept, rejected, proposed


def _caption(engine: Any, model: str, image_sha256: str | None) -> str:
    """The caption of a keyframe's picture under this model ('' for no picture, or a model without CLIP)."""
    if image_sha256 is None:
        return ""
    return captions.caption_for(engine, None, image_sha256, current_revision(model))


def run_suggestions(suggestion_id: int) -> dict[str, object]:
    dropped: dict[str, object] = {"items": 0}
    what = f"suggestions {suggestion_id}"
    return lease.run_job(SUGGESTIONS, suggestion_id, what, _run_suggestions, dropped)


def _run_suggestions(suggestion_id: int, token: str) -> dict[str, object]:
    from engine.pipeline import get_engine
    from engine.suggesters.rank import Slot, rank_suggestions

    settings = get_settings()
    started = time.perf_counter()

    def _set(**values: Any) -> None:  # only while this claim holds the request (else LeaseLost)
        lease.write_job(SUGGESTIONS, suggestion_id, token, **values)

    def _end(status: str, **values: Any) -> None:
        lease.finish_job(SUGGESTIONS, suggestion_id, token, status, finished_at=utcnow(), **values)

    with new_session() as db:
        # Queued, or running under a lease that ran out (its worker died); a second copy takes nothing.
        if not lease.claim_job(db, SUGGESTIONS, suggestion_id, token, error=None, items=[]):
            return {"items": 0}
        row = db.get(Suggestion, suggestion_id)
        transition = db.get(Transition, row.transition_id) if row is not None else None
        if row is None or transition is None:
            return {"items": 0}
        try:
            target = plan_suggestions(transition, row.mode, row.count, row.after_keyframe_id, row.position)
        except Exception as exc:  # the keyframe was deleted since the request
            _end(Status.FAILED, error=str(exc))
            return {"items": 0}
        count, mode = row.count, row.mode
        seed = (transition.seed * 1_000_003 + suggestion_id) % (2**31)
        pixels = {name: getattr(transition, name) for name in PIXEL_FIELDS if hasattr(transition, name)}
        keyframe_prompts = [k.prompt for k in transition.keyframes]
        pictures = {k.position: k.image["sha256"] for k in transition.keyframes if k.image and not k.prompt}
    details: dict[str, Any] = {"mode": mode}

    try:
        # 1. The image model: its tokenizer bounds the prompts, its vocabulary (small models) filters them
        engine = get_engine(pixels["model"], models_dir=settings.models_dir, device=settings.worker_device)
        # A picture keyframe without a prompt is bridged from (or to) its caption, the text its frames are
        # made with (chosen now if no render has chosen it yet), not from an empty prompt.
        target = replace(
            target,
            start=target.start or _caption(engine, pixels["model"], pictures.get(target.left)),
            end=target.end or _caption(engine, pixels["model"], pictures.get(target.right)),
        )
        details |= {"start": target.start, "end": target.end}

        # 2-3. Ask the suggester (the language model loads here, once per worker process) and keep what
        # the image model can use, topped up from the templates
        want = pool_size(count)
        kept, rejected, proposed = bridge_candidates(
            engine, pixels["model"], target.start, target.end, want, count, seed, keyframe_prompts, details
        )
        details["proposed"] = len(proposed.prompts)
        details["rejected"] = [{"prompt": r.prompt[:200], "reason": r.reason} for r in rejected[:20]]
        details["raw"] = [text[:1000] for text in proposed.raw[:4]]
        _set(details=dict(details))

        # 4. Probe and rank; each update rewrites the items, best first
        params = PixelSettings.model_validate(
            {**pixels, "steps": min(settings.suggest_probe_steps, pixels["steps"])}
        )
        settings_json = params.model_dump_json()
        scorer = _scorer_for(engine)
        details["scorer"] = scorer.name
        store = get_store()
        stored: set[str] = set()
        slots = [Slot(position=p, local=target.local(p)) for p in target.positions]
        probe_started = time.perf_counter()

        def items_of(ranking: list[Any]) -> list[dict[str, Any]]:
            items = []
            for r in ranking:
                key = thumbnail_key(settings_json, r.prompt)
                if key not in stored:
                    store.write(key, png(thumbnail(r.image)))
                    stored.add(key)
                items.append(
                    {
                        "prompt": r.prompt,
                        "position": r.position,
                        "score": r.score,
                        "thumbnail_key": key,
                        "source": r.source,
                        "original": r.original,
                        "progress": r.progress,
                        "detour": r.detour,
                        "state": "new",
                    }
                )
            if mode == "storyboard":  # a chain reads in order
                items.sort(key=lambda item: item["position"])
            return items

        def on_update(ranking: list[Any]) -> None:
            _set(items=items_of(ranking))

        ranking = rank_suggestions(
            engine,
            scorer,
            params,
            target.start,
            target.end,
            kept,
            slots,
            batch_size=PROBE_BATCH,
            on_update=on_update,
        )
        details["probe_seconds"] = round(time.perf_counter() - probe_started, 2)
        details["probes"] = len(kept) + 2
        details["seconds"] = round(time.perf_counter() - started, 2)
        if not lease.finish_job(
            SUGGESTIONS,
            suggestion_id,
            token,
            Status.DONE,
            items=items_of(ranking),
            details=json.loads(json.dumps(details, default=str)),
            finished_at=utcnow(),
        ):
            raise lease.LeaseLost(f"suggestions {suggestion_id} were taken over before they were stored")
        log.info(
            "suggestions %s: %d items in %.1f s (%s)",
            suggestion_id,
            len(ranking),
            details["seconds"],
            details,
        )
        return {"items": len(ranking)}
    except lease.LeaseLost:
        raise
    except Exception as exc:
        log.exception("suggestions %s failed", suggestion_id)
        details["seconds"] = round(time.perf_counter() - started, 2)
        _end(
            Status.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            details=json.loads(json.dumps(details, default=str)),
        )
        return {"items": 0}
