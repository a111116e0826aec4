"""Calling the API from the tests: a transition, share links, and every way to write."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

HX = {"HX-Request": "true"}


def create(client: TestClient, **extra: Any) -> dict[str, Any]:
    body = {"start_prompt": "a city", "end_prompt": "a forest", "frames": 5, "seed": 3, "steps": 4, **extra}
    response = client.post("/api/transitions", json=body)
    assert response.status_code == 201
    return response.json()


def make_link(client: TestClient, tid: int, role: str, **extra: Any) -> dict[str, Any]:
    response = client.post(f"/api/transitions/{tid}/links", json={"role": role, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def bearer(link: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {link['token']}"}


def every_write(tid: int, keyframe: int, start: int, render: int) -> list[tuple[str, str, Any]]:
    """Every way to change something, through the API and the pages."""
    return [
        ("PATCH", f"/api/transitions/{tid}", {"steps": 9}),
        ("DELETE", f"/api/transitions/{tid}", None),
        ("POST", f"/api/transitions/{tid}/keyframes", {"position": 0.7, "prompt": "x"}),
        ("PATCH", f"/api/keyframes/{keyframe}", {"prompt": "y"}),
        ("PATCH", f"/api/keyframes/{start}", {"prompt": "y"}),
        ("DELETE", f"/api/keyframes/{keyframe}", None),
        ("POST", f"/api/transitions/{tid}/renders", None),
        ("POST", f"/api/renders/{render}/cancel", None),
        ("POST", f"/api/transitions/{tid}/undo", None),
        ("POST", f"/api/transitions/{tid}/redo", None),
        ("POST", f"/api/transitions/{tid}/revert", {"to_version": 1}),
        ("POST", f"/api/transitions/{tid}/links", {"role": "edit"}),
        ("POST", "/api/transitions", {"start_prompt": "a", "end_prompt": "b"}),
        ("FORM", f"/transitions/{tid}/settings", {"steps": "9"}),
        ("FORM", f"/transitions/{tid}/keyframes", {"position": "0.7", "prompt": "x"}),
        ("FORM", f"/keyframes/{keyframe}", {"prompt": "y"}),
        ("FORM", f"/keyframes/{keyframe}/delete", {}),
        ("FORM", f"/transitions/{tid}/render", {}),
        ("FORM", f"/renders/{render}/cancel", {}),
        ("FORM", f"/transitions/{tid}/undo", {}),
        ("FORM", f"/transitions/{tid}/revert", {"to_version": "1"}),
        ("FORM", f"/transitions/{tid}/links", {"role": "edit"}),
        ("FORM", f"/transitions/{tid}/delete", {}),
    ]


def send_as(client: TestClient, method: str, url: str, body: Any, headers: dict[str, str]) -> Any:
    """One write of every_write() with these headers (FORM: a page's htmx form post)."""
    if method == "FORM":
        return client.post(url, data=body, headers={**headers, **HX})
    return client.request(method, url, json=body, headers=headers)
