"""Suggested bridges through the whole spine: API → database → Celery → a real worker process, which asks
an OpenAI-compatible endpoint (a small server this test runs on 127.0.0.1), probes and ranks, and stores
thumbnails; then one suggestion is accepted through the ordinary keyframe API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.chat import ChatServer, choice
from tests.support.pictures import MINI_CLIP, create, end_of, tiny_with_clip, upload, world_picture
from tests.support.waiting import wait_for

CITY, FOREST = "a futuristic cityscape", "a girl in a magical forest"
ANSWER = (
    "Here are three scenes:\n1. A girl standing in a city garden\n"
    "2. A place where technology and nature coexist\n"
    "3. A dreamlike world where the city slowly transforms into a forest\n\nLet me know if you want more!"
)


@pytest.fixture
def chat() -> Any:
    server = ChatServer({"choices": [choice(ANSWER)]})
    yield server
    server.close()


def _finished(stack: Any, suggestion_id: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = stack.client.get(f"/api/suggestions/{suggestion_id}").json()
        return body if body["status"] in ("done", "failed") else None

    try:
        return wait_for(done, timeout=300, what=f"suggestions {suggestion_id}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nworker log:\n{stack.log.read_text()[-4000:]}") from None


def test_suggestions_are_written_ranked_and_accepted_through_a_real_worker(
    stack_factory: Any, chat: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGUE_SUGGESTER", "auto")
    monkeypatch.setenv("SEGUE_SUGGEST_URL", chat.url)
    monkeypatch.setenv("SEGUE_SUGGEST_MODEL", "bigger-model")
    monkeypatch.setenv("SEGUE_SUGGEST_PROBE_STEPS", "2")
    stack = stack_factory(mode="embedded", database="sqlite")
    client = stack.client
    created = client.post(
        "/api/transitions",
        json={"start_prompt": CITY, "end_prompt": FOREST, "frames": 6, "seed": 3, "steps": 3},
    )
    assert created.status_code == 201, created.text
    transition = created.json()
    start_id = transition["keyframes"][0]["id"]

    # 1. Ask: 202 {id, status}, nothing else; the worker does the rest
    started = client.post(
        f"/api/transitions/{transition['id']}/suggestions", json={"after_keyframe_id": start_id}
    )
    assert started.status_code == 202, started.text
    assert set(started.json()) == {"id", "status"} and started.json()["status"] in ("queued", "running")

    body = _finished(stack, started.json()["id"])
    assert body["status"] == "done", stack.log.read_text()[-3000:]
    assert set(body) == {"id", "status", "items"}
    items = body["items"]
    assert len(items) == 3 and all(set(i) == {"prompt", "position", "score", "thumbnail_url"} for i in items)
    assert sorted(i["position"] for i in items) == [0.25, 0.5, 0.75]  # evenly spaced in the segment
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)  # best first
    assert all(0 <= i["score"] <= 1 for i in items)
    for item in items:
        image = client.get(item["thumbnail_url"])
        assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
    # The endpoint's three ideas, plus templates for the ranking to choose from.
    assert {i["prompt"] for i in items} <= {
        "A girl standing in a city garden",
        "A place where technology and nature coexist",
        "A dreamlike world where the city slowly transforms into a forest",
    } | _templates()
    (request,) = chat.requests
    assert request["body"]["model"] == "bigger-model"
    assert request["body"]["messages"][-1]["content"].startswith(f"Start: {CITY}\nEnd: {FOREST}")

    # 2. The panel shows them, best first, with Accept / Edit / Discard
    panel = client.get(f"/transitions/{transition['id']}/suggestions/latest")
    assert panel.status_code == 200 and panel.text.count("data-suggest-accept ") == 3
    assert "Accept" in panel.text and "Discard" in panel.text and "Edit" in panel.text

    # 3. Accepting is an ordinary keyframe insert
    best = items[0]
    accepted = client.post(
        f"/api/transitions/{transition['id']}/keyframes",
        json={"position": best["position"], "prompt": best["prompt"]},
    )
    assert accepted.status_code == 201, accepted.text
    keyframes = client.get(f"/api/transitions/{transition['id']}").json()["keyframes"]
    assert [k["prompt"] for k in keyframes if k["position"] == best["position"]] == [best["prompt"]]
    marked = client.post(f"/suggestions/{body['id']}/items/0/accepted")
    assert marked.status_code == 200 and "Inserted as a keyframe" in marked.text

    # 4. A storyboard: a chain from the start to the end, in order along the timeline
    story = client.post(
        f"/api/transitions/{transition['id']}/suggestions", json={"mode": "storyboard", "count": 2}
    )
    assert story.status_code == 202
    chain = _finished(stack, story.json()["id"])
    assert chain["status"] == "done" and len(chain["items"]) == 2, (chain, stack.log.read_text()[-3000:])
    positions = [i["position"] for i in chain["items"]]
    assert positions == sorted(positions) and all(0 < p < 1 for p in positions)

    # 5. The endpoint fails: the worker falls back to the templates and says so
    chat.status = 503
    fallback = client.post(f"/api/transitions/{transition['id']}/suggestions", json={"count": 1})
    result = _finished(stack, fallback.json()["id"])
    assert result["status"] == "done" and len(result["items"]) == 1, (result, stack.log.read_text()[-3000:])
    assert "Fallback" in client.get(f"/suggestions/{fallback.json()['id']}/panel").text


@pytest.mark.skipif(not (MINI_CLIP / "config.json").is_file(), reason="Segue-mini's CLIP is not in models/")
def test_a_picture_keyframe_without_a_prompt_is_bridged_from_its_caption(
    stack_factory: Any, chat: ChatServer, monkeypatch: pytest.MonkeyPatch, models_dir: Path, tmp_path: Path
) -> None:
    """Asked before any render has captioned the picture: the worker captions it and asks for bridges from
    the city to the caption, not to an empty prompt."""
    monkeypatch.setenv("SEGUE_SUGGESTER", "auto")
    monkeypatch.setenv("SEGUE_SUGGEST_URL", chat.url)
    monkeypatch.setenv("SEGUE_SUGGEST_PROBE_STEPS", "2")
    models = tiny_with_clip(models_dir, tmp_path / "models")
    stack = stack_factory(mode="embedded", database="sqlite", models_dir=str(models))
    client = stack.client
    transition = create(stack.client, start_prompt=CITY, width=64, height=64)
    assert upload(client, end_of(transition)["id"], world_picture(), prompt="").status_code == 200
    started = client.post(f"/api/transitions/{transition['id']}/suggestions", json={"count": 2})
    assert started.status_code == 202, started.text
    body = _finished(stack, started.json()["id"])
    assert body["status"] == "done", stack.log.read_text()[-3000:]
    (request,) = chat.requests
    assert request["body"]["messages"][-1]["content"].startswith(
        f"Start: {CITY}\nEnd: a red boat on the sea at night\n"
    )
    # The caption is kept: the keyframe shows it, and a render uses the same one.
    end = client.get(f"/api/keyframes/{end_of(transition)['id']}").json()
    assert end["prompt"] == "" and end["image"]["caption"] == "a red boat on the sea at night"


def _templates() -> set[str]:
    from engine.suggesters.template import template_bridges

    return set(template_bridges(CITY, FOREST, 6))


def test_bad_requests_name_the_field(stack_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGUE_SUGGESTER", "template")  # the requests that are queued need no language model
    stack = stack_factory(mode="embedded", database="sqlite")
    client = stack.client
    transition = client.post(
        "/api/transitions", json={"start_prompt": CITY, "end_prompt": FOREST, "seed": 1}
    ).json()
    end_id = transition["keyframes"][-1]["id"]
    url = f"/api/transitions/{transition['id']}/suggestions"
    for body, field in (
        ({"after_keyframe_id": end_id}, "after_keyframe_id"),  # the end keyframe starts no segment
        ({"after_keyframe_id": 999999}, "after_keyframe_id"),
        ({"count": 0}, "count"),
        ({"count": 99}, "count"),
        ({"mode": "poem"}, "mode"),
        ({"colour": "red"}, "colour"),
    ):
        response = client.post(url, json=body)
        assert response.status_code == 422 and field in response.json()["errors"], (body, response.text)
    assert client.post("/api/transitions/999999/suggestions", json={}).status_code == 404
    assert client.get("/api/suggestions/999999").status_code == 404
    assert client.post(url).status_code == 202  # no body at all: the defaults

    # The frame panel's "suggest bridges here" (a form with the frame's t): htmx gets the panel, a plain
    # form post goes back to the editor; a bad position is named in the panel, and nothing is queued.
    page = f"/transitions/{transition['id']}/suggestions"
    plain = client.post(page, data={"position": "0.4"}, follow_redirects=False)
    assert plain.status_code == 303
    assert plain.headers["location"] == f"/transitions/{transition['id']}#suggestions"
    here = client.get(f"/transitions/{transition['id']}/suggestions/latest")
    assert "at t = 0.4" in here.text
    bad = client.post(page, data={"position": "1.5"}, headers={"HX-Request": "true"})
    assert bad.status_code == 422 and "position must be strictly between 0 and 1" in bad.text
