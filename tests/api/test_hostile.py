"""Hostile input, by hand (issue 13, finding 7): each case the issue measured, on SQLite and PostgreSQL.

- ids and offsets past the database's integer column: 422 naming the parameter (PostgreSQL answered 500
  from 2^31, SQLite from 2^63), for a request with a share link too;
- a body that is not UTF-8: the documented 422 shape (was FastAPI's 400);
- NUL and lone surrogates in text: 422 naming the field;
- timestamps always carry their zone (SQLite handed back naive datetimes);
- the OpenAPI schema carries the limits and documents 404/409/422/503.
The generated version of this is tests/api/test_schemathesis.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

HUGE = [2**31, 2**63, 2**64 + 7, -1, 0]


def _create(client: TestClient) -> dict[str, Any]:
    created = client.post(
        "/api/transitions", json={"start_prompt": "a city", "end_prompt": "a forest", "frames": 3, "steps": 2}
    )
    assert created.status_code == 201, created.text
    return created.json()


def test_ids_and_offsets_past_the_column_range_are_422_never_500(client: TestClient) -> None:
    created = _create(client)
    routes = [
        ("get", "/api/transitions/{}", "transition_id"),
        ("patch", "/api/transitions/{}", "transition_id"),
        ("delete", "/api/transitions/{}", "transition_id"),
        ("get", "/api/transitions/{}/edits", "transition_id"),
        ("post", "/api/transitions/{}/renders", "transition_id"),
        ("get", "/api/transitions/{}/renders", "transition_id"),
        ("post", "/api/transitions/{}/keyframes", "transition_id"),
        ("post", "/api/transitions/{}/undo", "transition_id"),
        ("get", "/api/renders/{}", "render_id"),
        ("post", "/api/renders/{}/cancel", "render_id"),
        ("post", "/api/renders/{}/retry", "render_id"),
        ("get", "/api/renders/{}/events", "render_id"),
        ("get", "/api/renders/{}/scores", "render_id"),
        ("patch", "/api/keyframes/{}", "keyframe_id"),
        ("delete", "/api/keyframes/{}", "keyframe_id"),
        ("delete", "/api/links/{}", "link_id"),
        ("get", "/api/exports/{}", "export_id"),
        ("get", "/transitions/{}", "transition_id"),
        ("get", "/frames/1/{}", "index"),
    ]
    for method, template, parameter in routes:
        for ident in HUGE:
            body = {"prompt": "x", "position": 0.5} if "keyframes" in template else None
            response = getattr(client, method)(
                template.format(ident), **({"json": body} if method in ("post", "patch") and body else {})
            )
            case = (method, template, ident, response.text)
            if parameter == "index" and ident == 0:  # frame indices start at 0: in range; render 1 is absent
                assert response.status_code == 404, case
                assert response.json() == {"detail": "render 1 does not exist"}, case
                continue
            assert response.status_code == 422, case
            # The id's own error, named (a write without a body gets one for the body beside it).
            messages = {error["field"]: error["msg"] for error in response.json()["detail"]}
            bound = "greater than or equal to" if ident < 1 else "less than or equal to 2147483647"
            assert messages.get(parameter, "").startswith(f"{parameter}: input should be {bound}"), case
    for offset in (2**31, 2**63, -1):
        assert client.get(f"/api/transitions?offset={offset}").status_code == 422
    assert client.get(f"/transitions/{created['id']}?render={2**63}").status_code == 422
    assert client.get(f"/?page={2**63}").status_code == 422
    named = client.get(f"/api/renders/{2**40}").json()
    assert named["errors"] == {"render_id": named["detail"][0]["msg"]}


def test_a_share_link_naming_a_huge_id_is_a_404(client: TestClient) -> None:
    created = _create(client)
    link = client.post(f"/api/transitions/{created['id']}/links", json={"role": "edit"}).json()
    headers = {"Authorization": f"Bearer {link['token']}"}
    # Behind a link an id is first checked against what the link may reach: an id past the column range is
    # one it cannot reach, so a 404 naming it (never a 500 from the database).
    for template, parameter in (
        ("/api/renders/{}", "render_id"),
        ("/api/keyframes/{}", "keyframe_id"),
        ("/api/transitions/{}", "transition_id"),
    ):
        response = client.get(template.format(2**63), headers=headers)
        assert response.status_code == 404, response.text
        assert response.json() == {"detail": f"{parameter} {2**63} does not exist"}


def test_a_body_that_is_not_utf8_is_the_documented_422(client: TestClient) -> None:
    for raw in (b'{"start_prompt": "\xff\xfe", "end_prompt": "b"}', b"\xd8\xc6V\xe6", b"\x00"):
        response = client.post("/api/transitions", content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        body = response.json()
        assert set(body) == {"detail", "errors"} and body["detail"][0]["field"] == "body"
        assert {"field", "msg", "type", "loc"} <= set(body["detail"][0])
    created = _create(client)
    response = client.patch(
        f"/api/transitions/{created['id']}",
        content=b'{"title": "\xc3"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422 and "UTF-8" in response.json()["errors"]["body"]


def test_nul_and_lone_surrogates_are_422_naming_the_field(client: TestClient) -> None:
    for text in ("a\x00b", "a\ud800b"):  # json.dumps sends them as \u0000 and \ud800 escapes
        raw = json.dumps({"start_prompt": text, "end_prompt": "b"})
        response = client.post("/api/transitions", content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        assert "start_prompt" in response.json()["errors"], response.text
    created = _create(client)
    title = client.patch(
        f"/api/transitions/{created['id']}",
        content=b'{"title": "x\\u0000y"}',
        headers={"content-type": "application/json"},
    )
    assert title.status_code == 422 and "title" in title.json()["errors"]


def test_timestamps_carry_their_zone(client: TestClient) -> None:
    created = _create(client)
    assert created["created_at"].endswith(("+00:00", "Z")) and created["updated_at"].endswith(("+00:00", "Z"))
    render = client.post(f"/api/transitions/{created['id']}/renders").json()
    assert client.get(f"/api/renders/{render['id']}").json()["created_at"].endswith(("+00:00", "Z"))
    edits = client.get(f"/api/transitions/{created['id']}/edits").json()
    assert edits and all(e["created_at"].endswith(("+00:00", "Z")) for e in edits)
    link = client.post(f"/api/transitions/{created['id']}/links", json={"role": "view"}).json()
    assert link["created_at"].endswith(("+00:00", "Z"))


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_schema_carries_the_limits_and_documents_the_errors(client: TestClient, database: str) -> None:
    schema = client.get("/openapi.json").json()
    create = schema["components"]["schemas"]["TransitionCreate"]["properties"]

    def bounds(prop: dict[str, Any]) -> tuple[Any, Any]:
        options = prop.get("anyOf", [prop])
        number = next(o for o in options if o.get("type") in ("integer", "number"))
        return number.get("minimum"), number.get("maximum")

    for name in ("frames", "steps", "width", "height", "seed", "batch_size"):
        low, high = bounds(create[name])
        assert low is not None and high is not None, (name, create[name])
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert "503" in codes, (method, path)
            if "{" in path:
                assert "404" in codes and "422" in codes, (method, path)
                ids = [p for p in operation["parameters"] if p["in"] == "path" and p["name"].endswith("_id")]
                assert all(p["schema"]["maximum"] == 2**31 - 1 for p in ids), (method, path)
            if any(p["name"] == "If-Match" for p in operation.get("parameters", [])):
                assert "409" in codes, (method, path)
    assert "ValidationErrors" in schema["components"]["schemas"]


def test_work_beyond_the_server_is_refused_naming_the_limit(client: TestClient) -> None:
    """600 frames × 1024² × 150 steps × batch 16 was accepted (202); now a 422 naming the limit."""
    giant = client.post(
        "/api/transitions",
        json={
            "start_prompt": "a",
            "end_prompt": "b",
            "frames": 600,
            "width": 1024,
            "height": 1024,
            "steps": 150,
            "batch_size": 16,
        },
    ).json()
    response = client.post(f"/api/transitions/{giant['id']}/renders")
    assert response.status_code == 422, response.text
    assert "SEGUE_MAX_RENDER_WORK" in response.json()["errors"]["frames"]
    wide = client.post(
        "/api/transitions",
        json={
            "start_prompt": "a",
            "end_prompt": "b",
            "frames": 2,
            "width": 1024,
            "height": 1024,
            "steps": 2,
            "batch_size": 16,
        },
    ).json()
    response = client.post(f"/api/transitions/{wide['id']}/renders")
    assert response.status_code == 422 and "SEGUE_MAX_BATCH_PIXELS" in response.json()["errors"]["batch_size"]
    page = client.post(f"/transitions/{giant['id']}/render")
    assert page.status_code == 200 and "SEGUE_MAX_RENDER_WORK" in page.text
    assert client.get(f"/api/transitions/{giant['id']}/renders").json() == []  # nothing was created


def test_renders_at_once_and_keyframes_per_transition_are_limited(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.config import get_settings

    monkeypatch.setenv("SEGUE_MAX_ACTIVE_RENDERS", "2")
    monkeypatch.setenv("SEGUE_MAX_KEYFRAMES", "3")
    get_settings.cache_clear()
    created = _create(client)
    first = client.post(f"/api/transitions/{created['id']}/renders").json()
    assert client.post(f"/api/transitions/{created['id']}/renders").status_code == 202
    third = client.post(f"/api/transitions/{created['id']}/renders")
    assert third.status_code == 429 and "SEGUE_MAX_ACTIVE_RENDERS" in third.json()["detail"]
    assert third.headers["Retry-After"]
    other = _create(client)  # the limit is per transition
    assert client.post(f"/api/transitions/{other['id']}/renders").status_code == 202
    client.post(f"/api/renders/{first['id']}/cancel")
    assert client.post(f"/api/transitions/{created['id']}/renders").status_code == 202
    # A retry makes a render active again: it counts too.
    retry = client.post(f"/api/renders/{first['id']}/retry")
    assert retry.status_code == 429, retry.text

    tid = created["id"]
    assert (
        client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.5, "prompt": "x"}).status_code
        == 201
    )
    refused = client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.7, "prompt": "y"})
    assert refused.status_code == 422 and "SEGUE_MAX_KEYFRAMES" in refused.json()["errors"]["keyframes"]
