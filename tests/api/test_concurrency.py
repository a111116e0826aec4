"""Optimistic concurrency: a write names the version it was based on; a stale one is a 409 with the current
state, never a silent overwrite; concurrent writers (threads, SQLite and PostgreSQL) lose nothing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

HX = {"HX-Request": "true"}


def create(client: TestClient) -> dict[str, Any]:
    body = {"start_prompt": "a city", "end_prompt": "a forest", "frames": 6, "seed": 1, "steps": 4}
    response = client.post("/api/transitions", json=body)
    assert response.status_code == 201
    return response.json()


def test_every_write_with_a_stale_version_is_a_409_with_what_changed_and_the_current_state(
    client: TestClient,
) -> None:
    t = create(client)
    tid = t["id"]
    assert client.get(f"/api/transitions/{tid}").headers["ETag"] == '"1"'
    # Someone else saves version 2 meanwhile.
    kf = client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.4, "prompt": "a garden"}).json()
    start = t["keyframes"][0]["id"]

    stale_writes = [
        ("PATCH", f"/api/transitions/{tid}", {"steps": 9}, {"If-Match": '"1"'}),
        ("PATCH", f"/api/transitions/{tid}", {"steps": 9, "version": 1}, {}),
        ("PATCH", f"/api/transitions/{tid}", {"steps": 9}, {"If-Match": 'W/"1"'}),
        ("POST", f"/api/transitions/{tid}/keyframes", {"position": 0.6, "prompt": "x", "version": 1}, {}),
        ("PATCH", f"/api/keyframes/{kf['id']}", {"prompt": "y"}, {"If-Match": "1"}),
        ("PATCH", f"/api/keyframes/{start}", {"prompt": "y", "version": 1}, {}),
        ("DELETE", f"/api/keyframes/{kf['id']}", None, {"If-Match": '"1"'}),
        ("POST", f"/api/transitions/{tid}/undo", None, {"If-Match": '"1"'}),
        ("POST", f"/api/transitions/{tid}/redo", {"version": 1}, {}),
        ("POST", f"/api/transitions/{tid}/revert", {"to_version": 1, "version": 1}, {}),
    ]
    for method, url, body, headers in stale_writes:
        response = client.request(method, url, json=body, headers=headers)
        assert response.status_code == 409, (method, url, response.text)
        payload = response.json()
        assert "based on version 1" in payload["detail"] and "now at version 2" in payload["detail"]
        assert "keyframe at 0.4 added: “a garden”" in payload["detail"]  # what changed meanwhile
        assert payload["current"]["version"] == 2
        assert [k["position"] for k in payload["current"]["keyframes"]] == [0.0, 0.4, 1.0]
        assert response.headers["ETag"] == '"2"'

    after = client.get(f"/api/transitions/{tid}").json()
    assert after["version"] == 2 and after["steps"] == 4  # nothing was half-saved

    # With the current version, or without any (scripts), the same writes go through.
    assert (
        client.patch(f"/api/transitions/{tid}", json={"steps": 9}, headers={"If-Match": '"2"'}).json()[
            "version"
        ]
        == 3
    )
    assert client.patch(f"/api/transitions/{tid}", json={"steps": 10}).json()["version"] == 4
    assert (
        client.patch(f"/api/transitions/{tid}", json={"steps": 11}, headers={"If-Match": "*"}).status_code
        == 200
    )
    bad = client.patch(f"/api/transitions/{tid}", json={"steps": 12}, headers={"If-Match": "yesterday"})
    assert bad.status_code == 422 and "If-Match" in bad.json()["errors"]
    disagree = client.patch(
        f"/api/transitions/{tid}", json={"steps": 12, "version": 5}, headers={"If-Match": "4"}
    )
    assert disagree.status_code == 422


def test_a_stale_page_form_shows_the_conflict_inline_with_the_fresh_state(client: TestClient) -> None:
    tid = create(client)["id"]
    client.patch(f"/api/transitions/{tid}", json={"end_prompt": "a quiet sea"})  # version 2, elsewhere
    response = client.post(
        f"/transitions/{tid}/keyframes",
        data={"position": "0.5", "prompt": "a garden", "version": "1"},
        headers=HX,
    )
    assert response.status_code == 409
    html = response.text
    assert "Not saved: someone changed this transition meanwhile" in html
    assert "end prompt → “a quiet sea”" in html  # what changed
    assert 'value="a quiet sea"' in html  # the fresh state, swapped in
    assert 'data-version="2"' in html and 'name="version" value="2"' in html
    assert client.get(f"/api/transitions/{tid}").json()["version"] == 2
    ok = client.post(
        f"/transitions/{tid}/keyframes",
        data={"position": "0.5", "prompt": "a garden", "version": "2"},
        headers=HX,
    )
    assert ok.status_code == 200 and 'data-version="3"' in ok.text


def _history_versions(client: TestClient, tid: int) -> list[int]:
    return [e["version"] for e in client.get(f"/api/transitions/{tid}/edits").json()]


def test_concurrent_writes_without_a_version_all_land_in_order(client: TestClient) -> None:
    """Scripts that name no version are serialized by the version claim: nothing is lost or duplicated."""
    tid = create(client)["id"]
    n = 12
    barrier = threading.Barrier(n)

    def add(i: int) -> int:
        barrier.wait()
        response = client.post(
            f"/api/transitions/{tid}/keyframes",
            json={"position": round(0.05 + i * 0.07, 2), "prompt": f"p{i}"},
        )
        assert response.status_code == 201, response.text
        return i

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(add, range(n)))
    final = client.get(f"/api/transitions/{tid}").json()
    assert final["version"] == 1 + n
    assert len(final["keyframes"]) == n + 2  # no lost update
    assert _history_versions(client, tid) == list(range(1, n + 2))  # every version once, in order


def test_concurrent_writes_on_the_same_version_exactly_one_wins(client: TestClient) -> None:
    tid = create(client)["id"]
    n = 10
    barrier = threading.Barrier(n)

    def patch(i: int) -> tuple[int, dict[str, Any]]:
        barrier.wait()
        response = client.patch(
            f"/api/transitions/{tid}", json={"seed": 100 + i}, headers={"If-Match": '"1"'}
        )
        return response.status_code, response.json()

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(patch, range(n)))
    codes = sorted(code for code, _ in results)
    assert codes == [200] + [409] * (n - 1)
    winner = next(body for code, body in results if code == 200)
    final = client.get(f"/api/transitions/{tid}").json()
    assert final["version"] == 2 and final["seed"] == winner["seed"]
    for code, body in results:
        if code == 409:
            assert body["current"]["version"] == 2
    assert _history_versions(client, tid) == [1, 2]


def test_editors_that_retry_on_409_never_lose_an_update(client: TestClient) -> None:
    """Read, write with If-Match, on 409 re-read and retry: every editor's keyframe ends up saved, and the
    versions each editor saw strictly increase."""
    tid = create(client)["id"]
    n, per_editor = 4, 3
    barrier = threading.Barrier(n)
    seen: dict[int, list[int]] = {}

    def editor(i: int) -> None:
        barrier.wait()
        versions: list[int] = []
        for j in range(per_editor):
            while True:
                current = client.get(f"/api/transitions/{tid}").json()["version"]
                position = round(0.02 + (i * per_editor + j) * 0.07, 2)
                response = client.post(
                    f"/api/transitions/{tid}/keyframes",
                    json={"position": position, "prompt": f"editor {i} #{j}"},
                    headers={"If-Match": f'"{current}"'},
                )
                if response.status_code == 201:
                    versions.append(current + 1)
                    break
                assert response.status_code == 409, response.text
        seen[i] = versions

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(editor, range(n)))
    final = client.get(f"/api/transitions/{tid}").json()
    assert len(final["keyframes"]) == 2 + n * per_editor
    assert final["version"] == 1 + n * per_editor
    for versions in seen.values():
        assert versions == sorted(set(versions))  # strictly increasing
    every = sorted(v for versions in seen.values() for v in versions)
    assert every == list(range(2, 2 + n * per_editor))  # each version made by exactly one write
    assert _history_versions(client, tid) == list(range(1, 2 + n * per_editor))


def test_concurrent_undos_take_back_distinct_edits(client: TestClient) -> None:
    tid = create(client)["id"]
    for i in range(6):
        client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.1 + i / 10, "prompt": f"k{i}"})
    barrier = threading.Barrier(6)

    def undo(_: int) -> int:
        barrier.wait()
        return client.post(f"/api/transitions/{tid}/undo").status_code

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(undo, range(6))) == [200] * 6
    final = client.get(f"/api/transitions/{tid}").json()
    assert [k["position"] for k in final["keyframes"]] == [0.0, 1.0]
    assert final["version"] == 13
    edits = client.get(f"/api/transitions/{tid}/edits").json()
    undone = [e["target_id"] for e in edits if e["kind"] == "undo"]
    assert len(set(undone)) == 6  # no edit undone twice


def test_the_history_panel_undoes_redoes_and_goes_back_to_a_version(client: TestClient) -> None:
    tid = create(client)["id"]
    page = client.get(f"/transitions/{tid}").text
    assert 'id="history"' in page and 'id="undo-button"' in page and "created" in page
    client.post(
        f"/transitions/{tid}/keyframes",
        data={"position": "0.3", "prompt": "a park", "version": "1"},
        headers=HX,
    )
    client.post(f"/transitions/{tid}/settings", data={"steps": "12", "version": "2"}, headers=HX)

    undone = client.post(f"/transitions/{tid}/undo", data={"version": "3"}, headers=HX)
    assert undone.status_code == 200
    assert 'id="history"' in undone.text and "undo v3: steps 4 → 12" in undone.text
    assert 'class="edit undone"' in undone.text and 'data-version="4"' in undone.text
    assert client.get(f"/api/transitions/{tid}").json()["steps"] == 4

    redone = client.post(f"/transitions/{tid}/redo", data={"version": "4"}, headers=HX)
    assert redone.status_code == 200 and client.get(f"/api/transitions/{tid}").json()["steps"] == 12

    back = client.post(f"/transitions/{tid}/revert", data={"version": "5", "to_version": "1"}, headers=HX)
    assert back.status_code == 200 and "back to version 1" in back.text
    now = client.get(f"/api/transitions/{tid}").json()
    assert now["version"] == 6 and now["steps"] == 4 and len(now["keyframes"]) == 2

    stale = client.post(f"/transitions/{tid}/undo", data={"version": "5"}, headers=HX)
    assert stale.status_code == 409 and "Not saved" in stale.text
    for _ in range(5):
        client.post(f"/api/transitions/{tid}/undo")
    nothing = client.post(f"/transitions/{tid}/undo", data={}, headers=HX)
    assert nothing.status_code == 422 and "nothing to undo" in nothing.text
