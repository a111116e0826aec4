"""A transition made through the API and rendered by the worker code in this process (tests/api/conftest.py's
`worker`): the prompts and the calls the paths and attention tests share."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

CITY = "a futuristic cityscape"


FOREST = "a girl in a magical forest"


def create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    body = {"start_prompt": CITY, "end_prompt": FOREST, "frames": 6, "seed": 42, "steps": 3, **overrides}
    response = client.post("/api/transitions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def render(client: TestClient, transition_id: int) -> dict[str, Any]:
    response = client.post(f"/api/transitions/{transition_id}/renders")
    assert response.status_code == 202, response.text
    return client.get(f"/api/renders/{response.json()['id']}").json()
