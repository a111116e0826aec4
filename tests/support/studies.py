"""Studies through the API: a finished render to study, a study, a participant, and answering every item."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.support.api import create
from tests.support.renders import finish_by_hand

OWNER_SECRET = "owner-secret-for-tests-0123456789"


def finished_render(client: TestClient, frames: int = 6, **extra: Any) -> int:
    tid = create(client, frames=frames, **extra)["id"]
    render_id = client.post(f"/api/transitions/{tid}/renders").json()["id"]
    finish_by_hand(render_id)
    return int(render_id)


def study(client: TestClient, render_ids: list[int], **extra: Any) -> dict[str, Any]:
    body = {"title": "Bridges", "render_ids": render_ids, "tasks": ["triplets"], "triplets": 4, "seed": 3}
    response = client.post("/api/studies", json={**body, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def participant(client: TestClient, study_id: int, **body: Any) -> dict[str, Any]:
    response = client.post(f"/api/studies/{study_id}/participants", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def answer_all(client: TestClient, token: str, choose: Any) -> list[dict[str, Any]]:
    """Answer every item with choose(item); the items seen, in order."""
    seen = []
    while True:
        response = client.get(f"/api/p/{token}/next")
        if response.status_code == 204:
            return seen
        item = response.json()
        seen.append(item)
        sent = client.post(
            f"/api/p/{token}/answers", json={"item_id": item["item_id"], "answer": choose(item), "ms": 800}
        )
        assert sent.status_code == 201, sent.text
