"""Share links: roles (a view link cannot write anything), revocation and expiry (404), one transition per
link, tokens stored hashed, the /s/<token> cookie, and a team deployment that requires a link."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.support.api import HX, bearer, create, every_write, make_link, send_as
from tests.support.serving import serving
from tests.support.stack import REDIS_URL
from tests.support.waiting import wait_for

HTML = {"Accept": "text/html"}


def test_a_link_is_made_with_a_strong_token_shown_once_and_stored_hashed(client: TestClient) -> None:
    from sqlalchemy import select

    from infra.db import new_session
    from infra.tables import ShareLink

    tid = create(client)["id"]
    link = make_link(client, tid, "view")
    assert set(link) >= {"id", "role", "token", "url"} and link["role"] == "view"
    assert link["url"] == f"/s/{link['token']}"
    assert len(link["token"]) >= 43  # 32 random bytes, url-safe base64: 256 bits
    other = make_link(client, tid, "view")
    assert other["token"] != link["token"]

    listed = client.get(f"/api/transitions/{tid}/links").json()
    assert [entry["id"] for entry in listed] == [link["id"], other["id"]]
    assert all("token" not in entry and entry["active"] for entry in listed)
    with new_session() as db:
        rows = db.scalars(select(ShareLink)).all()
        stored = " ".join(str(getattr(row, c.key)) for row in rows for c in ShareLink.__mapper__.column_attrs)
    assert link["token"] not in stored and other["token"] not in stored
    assert hashlib.sha256(link["token"].encode()).hexdigest() in stored

    for bad in ({"role": "admin"}, {"role": "view", "expires_at": "2001-01-01T00:00:00Z"}, {}):
        assert client.post(f"/api/transitions/{tid}/links", json=bad).status_code == 422


def test_a_view_link_reads_everything_and_writes_nothing(client: TestClient) -> None:
    t = create(client)
    tid = t["id"]
    keyframe = client.post(
        f"/api/transitions/{tid}/keyframes", json={"position": 0.4, "prompt": "a garden"}
    ).json()
    render = client.post(f"/api/transitions/{tid}/renders").json()
    link = make_link(client, tid, "view")
    h = bearer(link)

    for url in (
        f"/api/transitions/{tid}",
        f"/api/transitions/{tid}/edits",
        f"/api/transitions/{tid}/renders",
        f"/api/renders/{render['id']}",
        f"/transitions/{tid}",
        f"/frames/{render['id']}/0",
        f"/renders/compare?a={render['id']}&b={render['id']}",
    ):
        assert client.get(url, headers=h).status_code == 200, url

    before = client.get(f"/api/transitions/{tid}").json()
    for method, url, body in every_write(tid, keyframe["id"], t["keyframes"][0]["id"], render["id"]):
        response = send_as(client, method, url, body, h)
        assert response.status_code == 403, (method, url, response.status_code, response.text[:200])
    after = client.get(f"/api/transitions/{tid}").json()
    assert after == before  # nothing changed
    assert client.get(f"/api/renders/{render['id']}").json()["status"] == "queued"  # not cancelled

    # The owner (no credential on a local install) still does everything.
    assert client.patch(f"/api/transitions/{tid}", json={"steps": 9}).status_code == 200


def test_a_viewer_page_shows_no_edit_controls(client: TestClient) -> None:
    tid = create(client)["id"]
    client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.4, "prompt": "a garden"})
    client.post(f"/api/transitions/{tid}/renders")
    owner_page = client.get(f"/transitions/{tid}").text
    for control in ('id="settings-form"', "Save settings", 'id="keyframe-form"', '/cancel"',
                    'id="undo-button"', 'id="share"', "data-timeline", "/delete"):  # fmt: skip
        assert control in owner_page, control

    link = make_link(client, tid, "view")
    opened = client.get(link["url"], follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == f"/transitions/{tid}"
    assert "segue_link" in opened.headers["set-cookie"] and "HttpOnly" in opened.headers["set-cookie"]
    page = client.get(f"/transitions/{tid}")  # the cookie now carries the link
    html = page.text
    assert page.status_code == 200 and "a garden" in html and "View only" in html
    for control in ("Save settings", 'id="keyframe-form"', 'id="render-button"', '/cancel"',
                    'id="undo-button"',
                    'id="share"', "data-timeline", "/delete", "<form method=\"post\""):  # fmt: skip
        assert control not in html, control
    assert client.get("/", follow_redirects=False).headers["location"] == f"/transitions/{tid}"
    client.get("/s/leave")  # back to the owner
    assert "Save settings" in client.get(f"/transitions/{tid}").text


def test_an_edit_link_edits_and_renders_and_is_named_in_the_history(client: TestClient) -> None:
    tid = create(client)["id"]
    link = make_link(client, tid, "edit")
    h = bearer(link)
    added = client.post(
        f"/api/transitions/{tid}/keyframes", json={"position": 0.5, "prompt": "a garden"}, headers=h
    )
    assert added.status_code == 201
    assert client.post(f"/api/transitions/{tid}/renders", headers=h).status_code == 202
    assert client.post(f"/api/transitions/{tid}/undo", headers=h).status_code == 200
    edits = client.get(f"/api/transitions/{tid}/edits", headers=h).json()
    assert [(e["kind"], e["link_id"], e["who"]) for e in edits[1:]] == [
        ("add_keyframe", link["id"], f"edit link #{link['id']}"),
        ("undo", link["id"], f"edit link #{link['id']}"),
    ]
    # Managing links and deleting the transition stay with the owner.
    assert client.post(f"/api/transitions/{tid}/links", json={"role": "edit"}, headers=h).status_code == 403
    assert client.get(f"/api/transitions/{tid}/links", headers=h).status_code == 403
    assert client.delete(f"/api/links/{link['id']}", headers=h).status_code == 403
    assert client.delete(f"/api/transitions/{tid}", headers=h).status_code == 403


def test_a_link_opens_its_own_transition_only(client: TestClient) -> None:
    mine, other = create(client), create(client)
    other_kf = client.post(
        f"/api/transitions/{other['id']}/keyframes", json={"position": 0.5, "prompt": "x"}
    ).json()
    other_render = client.post(f"/api/transitions/{other['id']}/renders").json()
    mine_render = client.post(f"/api/transitions/{mine['id']}/renders").json()
    h = bearer(make_link(client, mine["id"], "edit"))
    assert client.get(f"/api/transitions/{mine['id']}", headers=h).status_code == 200
    for method, url in (
        ("GET", f"/api/transitions/{other['id']}"),
        ("PATCH", f"/api/transitions/{other['id']}"),
        ("PATCH", f"/api/keyframes/{other_kf['id']}"),
        ("GET", f"/api/renders/{other_render['id']}"),
        ("GET", f"/api/transitions/{other['id']}/events"),
        ("GET", f"/transitions/{other['id']}"),
        ("GET", f"/renders/compare?a={mine_render['id']}&b={other_render['id']}"),
    ):
        response = client.request(method, url, json={"prompt": "y"} if method == "PATCH" else None, headers=h)
        assert response.status_code == 404, (method, url, response.status_code)
    assert client.get("/api/transitions", headers=h).status_code == 403  # the list of everything


def test_revoked_and_expired_links_are_404_everywhere(client: TestClient) -> None:
    from sqlalchemy import update

    from infra.db import session_scope
    from infra.tables import ShareLink

    tid = create(client)["id"]
    revoked = make_link(client, tid, "edit")
    assert client.get(f"/api/transitions/{tid}", headers=bearer(revoked)).status_code == 200
    assert client.delete(f"/api/links/{revoked['id']}").status_code == 204
    assert client.delete(f"/api/links/{revoked['id']}").status_code == 204  # idempotent
    for method, url in (
        ("GET", f"/api/transitions/{tid}"),
        ("PATCH", f"/api/transitions/{tid}"),
        ("GET", f"/transitions/{tid}"),
    ):
        response = client.request(
            method, url, json={"steps": 5} if method == "PATCH" else None, headers=bearer(revoked)
        )
        assert response.status_code == 404, (method, url)
    assert client.get(revoked["url"], follow_redirects=False).status_code == 404
    listed = {entry["id"]: entry for entry in client.get(f"/api/transitions/{tid}/links").json()}
    assert listed[revoked["id"]]["active"] is False and listed[revoked["id"]]["revoked_at"]

    soon = make_link(client, tid, "view", expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    assert client.get(f"/api/transitions/{tid}", headers=bearer(soon)).status_code == 200
    with session_scope() as db:
        db.execute(
            update(ShareLink)
            .where(ShareLink.id == soon["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(1))
        )
    assert client.get(f"/api/transitions/{tid}", headers=bearer(soon)).status_code == 404
    assert (
        client.get(f"/api/transitions/{tid}", headers={"Authorization": "Bearer not-a-token"}).status_code
        == 404
    )
    assert client.get(f"/api/transitions/{tid}").status_code == 200  # the owner is unaffected


def test_the_share_panel_makes_copies_and_revokes_links(client: TestClient) -> None:
    tid = create(client)["id"]
    made = client.post(f"/transitions/{tid}/links", data={"role": "view", "expires_in_days": "7"}, headers=HX)
    assert made.status_code == 200
    html = made.text
    assert 'id="new-link-url"' in html and "shown only once" in html and "/s/" in html
    link = client.get(f"/api/transitions/{tid}/links").json()[0]
    assert link["expires_at"] is not None and link["role"] == "view"
    bad = client.post(
        f"/transitions/{tid}/links", data={"role": "view", "expires_in_days": "soon"}, headers=HX
    )
    assert bad.status_code == 422 and "number of days" in bad.text
    revoked = client.post(f"/links/{link['id']}/revoke", headers=HX)
    assert revoked.status_code == 200 and "revoked" in revoked.text
    assert client.get(f"/api/transitions/{tid}/links").json()[0]["active"] is False


@pytest.fixture
def team(client: TestClient, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The same database, served by a team deployment: every request needs a link or the admin token."""
    from app.main import create_app
    from infra.config import get_settings

    monkeypatch.setenv("SEGUE_REQUIRE_LINK", "true")
    monkeypatch.setenv("SEGUE_ADMIN_TOKEN", "admin-token-for-tests-0123456789")
    get_settings.cache_clear()
    with TestClient(create_app()) as team_client:
        yield team_client
    get_settings.cache_clear()


def test_a_team_deployment_needs_a_link_or_the_admin_token(team: TestClient) -> None:
    admin = {"Authorization": "Bearer admin-token-for-tests-0123456789"}
    assert team.get("/api/transitions").status_code == 401
    assert team.get("/api/transitions").headers["WWW-Authenticate"].startswith("Bearer")
    assert (
        team.get("/", headers=HTML).status_code == 401
        and "needs a share link" in team.get("/", headers=HTML).text
    )
    assert team.post("/api/transitions", json={"start_prompt": "a", "end_prompt": "b"}).status_code == 401
    # Open to all: the health report itself, not a 401. It is 503 here only because no worker runs.
    health = team.get("/healthz")
    assert health.status_code == 503 and health.json()["down"] == ["no worker alive"], health.text
    assert team.get("/static/editor.js").status_code == 200

    created = team.post("/api/transitions", json={"start_prompt": "a", "end_prompt": "b"}, headers=admin)
    assert created.status_code == 201
    tid = created.json()["id"]
    assert team.get("/api/transitions", headers=admin).status_code == 200
    view = team.post(f"/api/transitions/{tid}/links", json={"role": "view"}, headers=admin).json()
    assert team.get(f"/api/transitions/{tid}").status_code == 401
    assert team.get(f"/api/transitions/{tid}", headers=bearer(view)).status_code == 200
    assert team.patch(f"/api/transitions/{tid}", json={"steps": 5}, headers=bearer(view)).status_code == 403
    # In a browser: the admin opens /s/<admin token> once, a viewer their link.
    assert team.get("/s/admin-token-for-tests-0123456789", follow_redirects=False).headers["location"] == "/"
    assert team.get("/", headers=HTML).status_code == 200
    team.cookies.clear()
    assert team.get(view["url"], follow_redirects=False).headers["location"] == f"/transitions/{tid}"
    assert team.get(f"/transitions/{tid}").status_code == 200


def test_require_link_without_an_admin_token_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from infra.config import Settings

    monkeypatch.setenv("SEGUE_REQUIRE_LINK", "true")
    monkeypatch.delenv("SEGUE_ADMIN_TOKEN", raising=False)
    with pytest.raises(ValidationError, match="SEGUE_ADMIN_TOKEN"):
        Settings()


# ---------------------------------------------------------------- live co-viewing


def _publish_render(render_id: int, frames: int) -> None:
    from core import events
    from infra.bus import get_bus

    bus = get_bus()
    for index in range(frames):
        bus.publish(
            events.FrameDone(
                render_id=render_id, index=index, t=index / (frames - 1), url=f"/f{index}", reused=False
            )
        )
    bus.publish(events.Done(render_id=render_id))


def test_a_view_link_follows_edits_and_renders_live_on_one_stream(client: TestClient) -> None:
    import json
    import threading
    import urllib.request

    from app import coviewing
    from core.sse import parse_sse
    from infra.db import new_session

    tid = create(client, frames=3)["id"]
    view = bearer(make_link(client, tid, "view"))
    with new_session() as db:
        start = coviewing.initial_cursor(db, tid).encode()
    events: list[dict[str, str]] = []
    with serving(client.app) as url:  # a real server: the stream is read while it is written

        def read() -> None:
            stream = urllib.request.Request(f"{url}/api/transitions/{tid}/events?after={start}", headers=view)
            with urllib.request.urlopen(stream, timeout=60) as response:
                for event in parse_sse(line.decode().rstrip("\r\n") for line in response):
                    events.append(event)  # one by one, as the stream writes them

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        added = client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.5, "prompt": "a garden"})
        kf = added.json()
        client.patch(f"/api/keyframes/{kf['id']}", json={"prompt": "a rose garden"})
        render = client.post(f"/api/transitions/{tid}/renders").json()
        _publish_render(render["id"], 3)
        # The transition goes once the stream has relayed the whole render (else it would never see it).
        wait_for(lambda: "done" in [e["event"] for e in events], timeout=30, what="the render's end, relayed")
        client.delete(f"/api/transitions/{tid}")
        reader.join(timeout=30)
        assert not reader.is_alive(), "the stream did not end with the transition"

    names = [e["event"] for e in events]
    changed = [json.loads(e["data"]) for e in events if e["event"] == "changed"]
    assert [(c["version"], c["kind"]) for c in changed] == [(2, "add_keyframe"), (3, "update_keyframe")]
    assert changed[1]["summary"] == "keyframe at 0.5 → “a rose garden”"
    started = [json.loads(e["data"]) for e in events if e["event"] == "render"]
    assert [(s["render_id"], s["transition_version"], s["frames_total"]) for s in started] == [
        (render["id"], 3, 3)
    ]
    frames = [json.loads(e["data"])["index"] for e in events if e["event"] == "frame"]
    assert frames == [0, 1, 2]
    assert names.index("render") < names.index("frame") < names.index("done") and names[-1] == "deleted"
    assert len({e["id"] for e in events}) == len(events)  # every event has its own resumable id


@pytest.mark.parametrize("mode", ["embedded", pytest.param("distributed", marks=pytest.mark.redis)])
def test_the_co_viewing_stream_resumes_after_last_event_id(
    client: TestClient, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import uuid

    from app import coviewing
    from infra.config import get_settings
    from infra.db import new_session

    if mode == "distributed":
        monkeypatch.setenv("SEGUE_MODE", "distributed")
        monkeypatch.setenv("SEGUE_REDIS_URL", REDIS_URL)
        monkeypatch.setenv("SEGUE_REDIS_NAMESPACE", f"segue-test-{uuid.uuid4().hex[:8]}")
        get_settings.cache_clear()
    tid = create(client, frames=2)["id"]
    with new_session() as db:
        start = coviewing.initial_cursor(db, tid)
    for i in range(3):
        client.patch(f"/api/transitions/{tid}", json={"steps": 10 + i})
    render = client.post(f"/api/transitions/{tid}/renders").json()
    _publish_render(render["id"], 2)

    class Viewer:  # the stream asks whether its reader left
        async def is_disconnected(self) -> bool:
            return False

    async def read(cursor: coviewing.Cursor, count: int) -> list[coviewing.Item]:
        items: list[coviewing.Item] = []
        async for item in coviewing.follow(Viewer(), tid, cursor):  # type: ignore[arg-type]
            items.append(item)
            if len(items) == count:
                break
        return items

    # 3 changed; render, progress (queued), 2 frames, done
    everything = asyncio.run(asyncio.wait_for(read(start, 8), 30))
    assert sorted(i.name for i in everything) == sorted(
        ["changed"] * 3 + ["render", "progress", "frame", "frame", "done"]
    )
    assert [i.data["version"] for i in everything if i.name == "changed"] == [2, 3, 4]
    # Reconnect after the second event: exactly the rest, nothing twice.
    cut = everything[1].cursor.encode()
    rest = asyncio.run(asyncio.wait_for(read(coviewing.Cursor.decode(cut), 6), 30))  # type: ignore[arg-type]
    key = lambda i: (i.name, i.data.get("version"), i.data.get("index"))  # noqa: E731
    assert sorted(map(key, rest), key=str) == sorted(map(key, everything[2:]), key=str)
    # After the render's final event nothing of it is replayed again.
    tail = everything[-1].cursor.encode()
    client.patch(f"/api/transitions/{tid}", json={"steps": 20})
    after_tail = asyncio.run(asyncio.wait_for(read(coviewing.Cursor.decode(tail), 1), 30))  # type: ignore[arg-type]
    assert [(i.name, i.data.get("version")) for i in after_tail] == [("changed", 5)]
    get_settings.cache_clear()


def test_a_link_has_its_own_quota_of_renders_at_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.config import get_settings

    monkeypatch.setenv("SEGUE_MAX_ACTIVE_RENDERS", "4")
    monkeypatch.setenv("SEGUE_MAX_ACTIVE_RENDERS_PER_LINK", "1")
    get_settings.cache_clear()
    tid = create(client)["id"]
    guest, other = make_link(client, tid, "edit"), make_link(client, tid, "edit")

    first = client.post(f"/api/transitions/{tid}/renders", headers=bearer(guest))
    assert first.status_code == 202, first.text
    refused = client.post(f"/api/transitions/{tid}/renders", headers=bearer(guest))
    assert refused.status_code == 429 and "SEGUE_MAX_ACTIVE_RENDERS_PER_LINK" in refused.json()["detail"]
    assert refused.headers["Retry-After"]
    page = client.post(f"/transitions/{tid}/render", headers={**bearer(guest), **HX})
    assert page.status_code == 200 and "SEGUE_MAX_ACTIVE_RENDERS_PER_LINK" in page.text  # inline in the page
    # Another link and the owner still have room: one guest cannot hold every slot of the transition.
    assert client.post(f"/api/transitions/{tid}/renders", headers=bearer(other)).status_code == 202
    assert client.post(f"/api/transitions/{tid}/renders").status_code == 202
    assert len(client.get(f"/api/transitions/{tid}/renders").json()) == 3  # nothing half-saved by the 429s

    # Cancelling frees the link's slot; a retry through the link counts against it again.
    assert client.post(f"/api/renders/{first.json()['id']}/cancel", headers=bearer(guest)).status_code == 200
    second = client.post(f"/api/transitions/{tid}/renders", headers=bearer(guest))
    assert second.status_code == 202
    retry = client.post(f"/api/renders/{first.json()['id']}/retry", headers=bearer(guest))
    assert retry.status_code == 429 and "SEGUE_MAX_ACTIVE_RENDERS_PER_LINK" in retry.json()["detail"]
    assert client.post(f"/api/renders/{first.json()['id']}/retry").status_code == 202  # the owner may
