"""Celery tasks: thin wrappers that take ids, not objects, and hand over to worker.render."""

from __future__ import annotations

from infra.queue import (
    AUTOFIX_TASK,
    EXPORT_TASK,
    MOCE_SEARCH_TASK,
    PLAN_RENDER_TASK,
    RENDER_BATCH_TASK,
    STUDY_BLOCKS_TASK,
    SUGGEST_TASK,
)
from worker.autofix import run_autofix
from worker.block_features import run_study_blocks
from worker.celery_app import celery
from worker.exports import run_export
from worker.moce import run_search
from worker.planning import run_plan
from worker.render import run_batch
from worker.suggestions import run_suggestions


@celery.task(name=RENDER_BATCH_TASK, acks_late=True)
def render_batch(render_id: int, indices: list[int]) -> dict[str, int]:
    return run_batch(render_id, indices, overlap=True)  # the next batch denoises while this one is stored


@celery.task(name=EXPORT_TASK, acks_late=True)
def export_render(export_id: int) -> dict[str, object]:
    return run_export(export_id)


@celery.task(name=PLAN_RENDER_TASK, acks_late=True)
def plan_render(render_id: int) -> dict[str, int]:
    return run_plan(render_id)


@celery.task(name=SUGGEST_TASK, acks_late=True)
def suggest_prompts(suggestion_id: int) -> dict[str, object]:
    return run_suggestions(suggestion_id)


@celery.task(name=MOCE_SEARCH_TASK, acks_late=True)
def search_switch_step(search_id: int) -> dict[str, object]:
    return run_search(search_id)


@celery.task(name=AUTOFIX_TASK, acks_late=True)
def autofix_step(autofix_id: int) -> dict[str, object]:
    return run_autofix(autofix_id)


@celery.task(name=STUDY_BLOCKS_TASK, acks_late=True)
def read_study_blocks(job_id: int) -> dict[str, object]:
    return run_study_blocks(job_id)
