"""The HTML side without a browser: forms, inline errors, fragments, warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

HX = {"HX-Request": "true"}


def test_the_form_shows_errors_inline_and_saves_nothing(client: TestClient) -> None:
    response = client.post(
        "/transitions", data={"start_prompt": "a city", "end_prompt": "", "frames": "1"}, headers=HX
    )
    assert response.status_code == 422
    html = response.text
    assert 'id="end_prompt-error"' in html and "end_prompt must not be empty" in html
    assert "frames must be between 2 and 600 (got 1)" in html
    assert ">a city</textarea>" in html  # what was typed is kept
    assert client.get("/api/transitions").json() == []


def test_the_form_creates_and_redirects(client: TestClient) -> None:
    response = client.post(
        "/transitions", data={"start_prompt": "a city", "end_prompt": "a forest", "seed": ""}, headers=HX
    )
    assert response.status_code == 200
    location = response.headers["HX-Redirect"]
    created = client.get("/api/transitions").json()[0]
    assert location == f"/transitions/{created['id']}"
    assert 0 <= created["seed"] < 2**32  # an empty seed means a random one, stored
    # Without JavaScript the same form works with a plain redirect.
    plain = client.post("/transitions", data={"start_prompt": "x", "end_prompt": "y"}, follow_redirects=False)
    assert plain.status_code == 303


def test_keyframe_errors_come_back_inside_the_timeline(client: TestClient) -> None:
    tid = client.post("/api/transitions", json={"start_prompt": "a", "end_prompt": "b"}).json()["id"]
    response = client.post(
        f"/transitions/{tid}/keyframes", data={"position": "1.2", "prompt": "c"}, headers=HX
    )
    assert response.status_code == 422
    assert 'id="timeline"' in response.text and "strictly between 0 and 1 (got 1.2)" in response.text
    ok = client.post(f"/transitions/{tid}/keyframes", data={"position": "0.25", "prompt": "c"}, headers=HX)
    assert ok.status_code == 200 and 'data-position="0.25"' in ok.text
    assert 'hx-swap-oob="true"' in ok.text  # the header (version, segments) is refreshed too


def test_settings_save_bumps_the_version(client: TestClient) -> None:
    tid = client.post("/api/transitions", json={"start_prompt": "a", "end_prompt": "b"}).json()["id"]
    bad = client.post(f"/transitions/{tid}/settings", data={"steps": "0", "title": "t"}, headers=HX)
    assert bad.status_code == 422 and "steps must be between 1 and 150" in bad.text
    assert client.get(f"/api/transitions/{tid}").json()["version"] == 1
    good = client.post(f"/transitions/{tid}/settings", data={"steps": "30", "title": "t"}, headers=HX)
    assert good.status_code == 200 and "Saved as version 2" in good.text


@pytest.fixture
def with_tokenizer(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.config import get_settings
    from services.prompts import _tokenizer

    monkeypatch.setenv("SEGUE_MODELS_DIR", str(models_dir))
    get_settings.cache_clear()
    _tokenizer.cache_clear()


def test_a_prompt_past_77_tokens_is_saved_with_a_warning(client: TestClient, with_tokenizer: None) -> None:
    long_prompt = "a very detailed painting of " + " ".join(f"tree{i}" for i in range(90))
    response = client.post("/api/transitions", json={"start_prompt": long_prompt, "end_prompt": "a city"})
    assert response.status_code == 201
    warnings = response.json()["warnings"]
    assert len(warnings) == 1 and warnings[0]["field"] == "start_prompt"
    assert "the model reads 75" in warnings[0]["message"] and "the rest is ignored" in warnings[0]["message"]
    page = client.get(f"/transitions/{response.json()['id']}")
    assert "the rest is ignored" in page.text
    short = client.post("/api/transitions", json={"start_prompt": "a forest", "end_prompt": "a city"})
    assert short.json()["warnings"] == []


def test_the_page_streams_only_what_it_does_not_already_show(client: TestClient) -> None:
    import re

    from core import events
    from infra.bus import get_bus
    from tests.support.sse import read_sse

    tid = client.post("/api/transitions", json={"start_prompt": "a", "end_prompt": "b", "frames": 3}).json()[
        "id"
    ]
    render_id = client.post(f"/api/transitions/{tid}/renders").json()["id"]
    bus = get_bus()
    bus.publish(events.FrameDone(render_id=render_id, index=0, t=0.0, url="/x/0.png", reused=False))

    page = client.get(f"/transitions/{tid}").text
    match = re.search(rf'sse-connect="/renders/{render_id}/stream\?after=(\w+)"', page)
    assert match, "a running render's page must resume its stream after what it drew"
    bus.publish(events.FrameDone(render_id=render_id, index=2, t=1.0, url="/x/2.png", reused=False))
    stats = events.RenderStats(frames_total=3, frames_computed=3, frames_reused=0, seconds=1.0)
    bus.publish(events.Done(render_id=render_id, stats=stats))
    streamed = read_sse(client, f"/renders/{render_id}/stream?after={match.group(1)}")
    names = [e["event"] for e in streamed if e["event"] != "end"]
    assert names[0] == "frame-2" and "frame-0" not in names
    assert [e["event"] for e in streamed][-2:] == ["status", "end"]
    status = next(e for e in streamed if e["event"] == "status")
    assert 'data-status="done"' in status["data"] and "3 computed" in status["data"]


def test_a_missing_page_is_a_readable_404(client: TestClient) -> None:
    response = client.get("/transitions/4242", headers={"accept": "text/html"})
    assert response.status_code == 404
    assert "Transition 4242 does not exist" in response.text and 'href="/"' in response.text
    assert client.get("/api/transitions/4242").json() == {"detail": "transition 4242 does not exist"}


def _rendered_transitions(client: TestClient, n: int, start: int = 0) -> list[int]:
    """n transitions, each with a render whose frames are all finished."""
    from infra.db import session_scope
    from infra.tables import Frame

    ids = []
    for i in range(start, start + n):
        body = {
            "start_prompt": f"city {i}",
            "end_prompt": "forest",
            "frames": 10,
            "steps": 2,
            "title": f"t{i}",
        }
        tid = client.post("/api/transitions", json=body).json()["id"]
        render = client.post(f"/api/transitions/{tid}/renders").json()
        with session_scope() as db:
            for frame in db.query(Frame).filter(Frame.render_id == render["id"]):
                frame.status = "done"
        ids.append(tid)
    return ids


def _count_queries(database: str, fetch):  # type: ignore[no-untyped-def]
    from sqlalchemy import event

    from infra.db import engine_for

    statements: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = engine_for(database)
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = fetch()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200, response.text
    return len(statements), response


def test_the_index_and_the_list_cost_the_same_queries_for_2_or_8_transitions(
    client: TestClient, database: str
) -> None:
    _rendered_transitions(client, 2)
    few_page, page = _count_queries(database, lambda: client.get("/"))
    few_api, _ = _count_queries(database, lambda: client.get("/api/transitions"))
    assert page.text.count('class="card transition-row"') == 2
    assert page.text.count("/media/frames/") == 2 * 8  # eight evenly spaced thumbnails of ten frames
    _rendered_transitions(client, 6, start=2)
    many_page, page = _count_queries(database, lambda: client.get("/"))
    many_api, listed = _count_queries(database, lambda: client.get("/api/transitions"))
    assert page.text.count('class="card transition-row"') == 8
    assert (many_page, many_api) == (few_page, few_api)
    assert all(t["latest_render"]["status"] == "queued" for t in listed.json())


def test_the_index_pages_and_the_list_takes_limit_and_offset(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.routes import pages

    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    for i in range(5):
        client.post(
            "/api/transitions", json={"start_prompt": f"a{i}", "end_prompt": "b", "title": f"Title{i}"}
        )
    first = client.get("/").text
    assert "page 1 of 3" in first and 'href="/?page=2"' in first
    assert ">Title4</a>" in first and ">Title2</a>" not in first
    last = client.get("/?page=99").text  # past the end: the last page
    assert "page 3 of 3" in last and ">Title0</a>" in last and 'rel="next"' not in last
    titles = [t["title"] for t in client.get("/api/transitions?limit=2&offset=1").json()]
    assert titles == ["Title3", "Title2"]
    bad = client.get("/api/transitions?limit=0")
    assert bad.status_code == 422 and "limit" in bad.text
