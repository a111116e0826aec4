"""Fixtures of several API test modules: the API with its queue recorded and a worker run in this process, and
a Segue built with extra settings."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.isolation import without_reaper


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Record what start_render queues: render batches and planning tasks."""
    sent: dict[str, list[Any]] = {"batches": [], "plans": []}
    monkeypatch.setattr(
        "services.rendering.send_render_batch",
        lambda render_id, indices, **_options: sent["batches"].append((render_id, indices)),
    )
    monkeypatch.setattr(
        "services.rendering.send_plan_render", lambda render_id: sent["plans"].append(render_id)
    )
    return sent


@pytest.fixture
def api(database: str, queued: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The web side in this process, its queue recorded for `worker` to run here; no reaper."""
    from app.main import create_app

    without_reaper(monkeypatch)
    with TestClient(create_app(), headers={"Origin": "http://testserver"}) as test_client:
        yield test_client


@pytest.fixture
def worker(api: TestClient, queued: dict[str, list[Any]], models_dir, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run what was queued in this process (plans first, then batches) until nothing is left."""
    import torch

    from tests.support.isolation import reset_caches

    torch.set_num_threads(1)
    monkeypatch.setenv("SEGUE_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("SEGUE_WORKER_DEVICE", "cpu")
    reset_caches()

    def run() -> None:
        from worker.planning import run_plan
        from worker.render import run_batch

        while queued["plans"] or queued["batches"]:
            if queued["plans"]:
                run_plan(queued["plans"].pop(0))
            else:
                run_batch(*queued["batches"].pop(0))

    return run


@pytest.fixture
def app_with(database: str, sent_tasks: list[Any], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A Segue built with extra SEGUE_* settings (same database); clients made by the test. No reaper."""
    from app.main import create_app
    from infra.config import get_settings

    without_reaper(monkeypatch)

    def build(**env: str):  # type: ignore[no-untyped-def]
        for key, value in env.items():
            monkeypatch.setenv(f"SEGUE_{key.upper()}", value)
        get_settings.cache_clear()
        return create_app()

    yield build
    get_settings.cache_clear()
