"""Review notes (docs/notes.md): the API's shapes and 422s, roles on every note route (view reads, comment
adds notes and replies but edits nothing of the transition and resolves nothing, edit does all), notes live
on the co-viewing stream, and notes surviving a re-render, a project round trip and a zip export."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from fastapi.testclient import TestClient

from tests.support.api import HX, bearer, create, every_write, make_link, send_as
from tests.support.renders import finish_by_hand


def add(client: TestClient, tid: int, headers: dict[str, str] | None = None, **body: Any) -> Any:
    return client.post(f"/api/transitions/{tid}/notes", json={"t": 0.5, "text": "hold longer", **body},
                       headers=headers or {})  # fmt: skip


def notes_of(client: TestClient, tid: int) -> list[dict[str, Any]]:
    response = client.get(f"/api/transitions/{tid}/notes")
    assert response.status_code == 200
    return response.json()


def test_a_note_is_made_listed_replied_to_resolved_and_deleted(client: TestClient) -> None:
    tid = create(client)["id"]
    made = add(client, tid, t=0.25, t_end=0.5, text="  the girl pops in here  ", author="Ada")
    assert made.status_code == 201, made.text
    note = made.json()
    assert set(note) == {"id", "t", "t_end", "text", "author", "status", "replies", "created_at"}
    assert (note["t"], note["t_end"], note["text"], note["author"], note["status"], note["replies"]) == (
        0.25, 0.5, "the girl pops in here", "Ada", "open", []
    )  # fmt: skip
    second = add(client, tid, t=0.1).json()
    assert second["author"] == "" and second["t_end"] is None
    assert [n["id"] for n in notes_of(client, tid)] == [second["id"], note["id"]]  # timeline order

    replied = client.post(f"/api/notes/{note['id']}/replies", json={"text": "agreed", "author": "Bo"})
    assert replied.status_code == 201
    assert [(r["text"], r["author"]) for r in replied.json()["replies"]] == [("agreed", "Bo")]

    resolved = client.patch(f"/api/notes/{note['id']}", json={"status": "resolved"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert [n["id"] for n in client.get(f"/api/transitions/{tid}/notes?status=open").json()] == [second["id"]]
    assert [n["id"] for n in client.get(f"/api/transitions/{tid}/notes?status=resolved").json()] == [
        note["id"]
    ]
    moved = client.patch(f"/api/notes/{note['id']}", json={"t": 0.3, "t_end": None, "text": "hold"})
    assert (moved.json()["t"], moved.json()["t_end"], moved.json()["text"]) == (0.3, None, "hold")

    assert client.delete(f"/api/notes/{note['id']}").status_code == 204
    assert client.patch(f"/api/notes/{note['id']}", json={"text": "again"}).status_code == 404
    assert client.delete(f"/api/notes/{note['id']}").status_code == 404
    assert [n["id"] for n in notes_of(client, tid)] == [second["id"]]
    assert client.get("/api/transitions/999/notes").status_code == 404


def test_bad_notes_are_422_naming_the_field_and_range_and_nothing_is_saved(client: TestClient) -> None:
    tid = create(client)["id"]
    cases = [
        ({"t": 1.5}, "t", "between 0 and 1"),
        ({"t": -0.1}, "t", "between 0 and 1"),
        ({"t": 0.6, "t_end": 0.4}, "t_end", "at least t (0.6)"),
        ({"t_end": 1.2}, "t_end", "between 0 and 1"),
        ({"text": "   "}, "text", "1 to 2000 characters"),
        ({"text": "x" * 2001}, "text", "at most 2000 characters"),
        ({"author": "a" * 81}, "author", "at most 80 characters"),
        ({"t": "soon"}, "t", "t"),
        ({"colour": "red"}, "colour", "colour"),
    ]
    for body, field, words in cases:
        response = add(client, tid, **body)
        assert response.status_code == 422, (body, response.text)
        assert words in response.json()["errors"][field], (body, response.json())
    assert add(client, tid, text="x" * 2000).status_code == 201  # the limit itself is allowed
    assert len(notes_of(client, tid)) == 1

    note = notes_of(client, tid)[0]
    for body, field in (({"t_end": 0.2}, "t_end"), ({"t": 2}, "t"), ({"text": ""}, "text"),
                        ({"status": "done"}, "status"), ({"text": None}, "text")):  # fmt: skip
        response = client.patch(f"/api/notes/{note['id']}", json=body)
        assert response.status_code == 422 and field in response.json()["errors"], (body, response.text)
    reply = client.post(f"/api/notes/{note['id']}/replies", json={"text": "y" * 2001})
    assert reply.status_code == 422 and "2000" in reply.json()["errors"]["text"]
    assert notes_of(client, tid) == [note]  # nothing half-saved


def _note_routes(tid: int, note: int) -> list[tuple[str, str, Any]]:
    return [
        ("POST", f"/api/transitions/{tid}/notes", {"t": 0.2, "text": "x"}),
        ("PATCH", f"/api/notes/{note}", {"text": "changed"}),
        ("PATCH", f"/api/notes/{note}", {"status": "resolved"}),
        ("DELETE", f"/api/notes/{note}", None),
        ("POST", f"/api/notes/{note}/replies", {"text": "x"}),
        ("FORM", f"/transitions/{tid}/notes", {"t": "0.2", "text": "x"}),
        ("FORM", f"/notes/{note}/replies", {"text": "x"}),
        ("FORM", f"/notes/{note}/status", {"status": "resolved"}),
        ("FORM", f"/notes/{note}/delete", {}),
    ]


def test_a_view_link_reads_notes_and_writes_none(client: TestClient) -> None:
    tid = create(client)["id"]
    note = add(client, tid).json()
    h = bearer(make_link(client, tid, "view"))
    assert client.get(f"/api/transitions/{tid}/notes", headers=h).json() == [note]
    card = client.get(f"/transitions/{tid}/notes", headers=h)
    assert card.status_code == 200 and "hold longer" in card.text
    render = client.post(f"/api/transitions/{tid}/renders").json()
    assert "data-note-at=" not in client.get(f"/frames/{render['id']}/0", headers=h).text
    assert (
        'id="note-form"' not in card.text
        and "note-resolve" not in card.text
        and "reply-form" not in card.text
    )
    for method, url, body in _note_routes(tid, note["id"]):
        response = send_as(client, method, url, body, h)
        assert response.status_code == 403, (method, url, response.status_code)
        assert "view link" in response.text
    assert notes_of(client, tid) == [note]


def test_a_comment_link_adds_notes_and_replies_but_edits_and_resolves_nothing(client: TestClient) -> None:
    t = create(client)
    tid = t["id"]
    keyframe = client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.4, "prompt": "a garden"})
    render = client.post(f"/api/transitions/{tid}/renders").json()
    owners = add(client, tid, text="the owner's").json()
    link = make_link(client, tid, "comment")
    assert link["role"] == "comment"
    h = bearer(link)

    # Every write to the transition is refused exactly as for a view link.
    before = client.get(f"/api/transitions/{tid}").json()
    for method, url, body in every_write(tid, keyframe.json()["id"], t["keyframes"][0]["id"], render["id"]):
        response = send_as(client, method, url, body, h)
        assert response.status_code == 403, (method, url, response.status_code, response.text[:200])
    assert client.get(f"/api/transitions/{tid}").json() == before

    mine = add(client, tid, h, t=0.7, text="mine", author="Cy")
    assert mine.status_code == 201
    mine_id = mine.json()["id"]
    assert (
        client.post(f"/api/notes/{owners['id']}/replies", json={"text": "ok"}, headers=h).status_code == 201
    )
    # Its own note's text and place it may correct; nobody else's; and it resolves and deletes nothing.
    fixed = client.patch(f"/api/notes/{mine_id}", json={"text": "mine, fixed", "t": 0.72}, headers=h)
    assert fixed.status_code == 200 and fixed.json()["text"] == "mine, fixed"
    for method, url, body in (
        ("PATCH", f"/api/notes/{owners['id']}", {"text": "rewritten"}),
        ("PATCH", f"/api/notes/{mine_id}", {"status": "resolved"}),
        ("PATCH", f"/api/notes/{owners['id']}", {"status": "resolved"}),
        ("DELETE", f"/api/notes/{mine_id}", None),
        ("FORM", f"/notes/{owners['id']}/status", {"status": "resolved"}),
        ("FORM", f"/notes/{mine_id}/delete", {}),
    ):
        response = send_as(client, method, url, body, h)
        assert response.status_code == 403, (method, url, response.status_code)
    states = {n["id"]: (n["status"], n["text"]) for n in notes_of(client, tid)}
    assert states == {owners["id"]: ("open", "the owner's"), mine_id: ("open", "mine, fixed")}

    # Its page offers notes and replies, not resolving; the badge says what it is.
    page = client.get(link["url"]).text  # follows to the transition page with the link's cookie
    assert "Commenting through a share link" in page and "Save settings" not in page
    card = client.get(f"/transitions/{tid}/notes").text
    assert 'id="note-form"' in card and "reply-form" in card and "note-resolve" not in card
    frame = client.get(f"/frames/{render['id']}/1").text
    assert "data-note-at=" in frame and "Insert keyframe" not in frame
    form = client.post(f"/transitions/{tid}/notes", data={"t": "0.9", "text": "from the form"}, headers=HX)
    assert form.status_code == 200 and "from the form" in form.text
    client.get("/s/leave")

    # An edit link (like the owner) resolves and deletes.
    e = bearer(make_link(client, tid, "edit"))
    assert client.patch(f"/api/notes/{mine_id}", json={"status": "resolved"}, headers=e).status_code == 200
    assert client.delete(f"/api/notes/{owners['id']}", headers=e).status_code == 204


def test_a_link_reaches_only_its_own_transitions_notes(client: TestClient) -> None:
    mine, other = create(client)["id"], create(client)["id"]
    theirs = add(client, other).json()
    h = bearer(make_link(client, mine, "edit"))
    for method, url, body in _note_routes(other, theirs["id"]):
        assert send_as(client, method, url, body, h).status_code == 404, (method, url)
    assert client.get(f"/api/transitions/{other}/notes", headers=h).status_code == 404


def read_until(client: TestClient, url: str, headers: dict[str, str], wanted: int) -> list[dict[str, Any]]:
    """The stream's `note` events, read until `wanted` of them arrived (the stream itself never ends)."""
    found: list[dict[str, Any]] = []
    current: dict[str, str] = {}
    with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                name, _, value = line.partition(":")
                current[name] = value.removeprefix(" ")
                continue
            if current.get("event") == "note":
                found.append(json.loads(current["data"]))
                if len(found) == wanted:
                    break
            current = {}
    return found


def test_note_changes_reach_a_second_viewer_on_the_co_viewing_stream(client: TestClient) -> None:
    tid = create(client)["id"]
    commenter = make_link(client, tid, "comment")
    viewer = bearer(make_link(client, tid, "view"))
    note = add(client, tid, bearer(commenter), text="pops in").json()
    client.post(f"/api/notes/{note['id']}/replies", json={"text": "yes"}, headers=bearer(commenter))
    client.patch(f"/api/notes/{note['id']}", json={"status": "resolved"})
    client.delete(f"/api/notes/{note['id']}")

    # The viewer's page, drawn before these changes, follows the stream from its start.
    events = read_until(client, f"/api/transitions/{tid}/events", {**viewer, "Last-Event-ID": "~~"}, 4)
    assert [(e["action"], e["note_id"]) for e in events] == [
        ("added", note["id"]), ("replied", note["id"]), ("updated", note["id"]), ("deleted", note["id"])
    ]  # fmt: skip
    assert events[0]["link_id"] == commenter["id"] and events[2]["link_id"] is None


def test_notes_survive_a_re_render_and_an_edit(client: TestClient) -> None:
    tid = create(client)["id"]
    first = client.post(f"/api/transitions/{tid}/renders").json()["id"]
    finish_by_hand(first)
    note = add(client, tid, t=0.4, t_end=0.6).json()
    client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.5, "prompt": "a garden"})
    second = client.post(f"/api/transitions/{tid}/renders").json()["id"]
    finish_by_hand(second)
    assert second != first
    assert notes_of(client, tid) == [note]  # pinned to t, untouched by the new frames


def test_notes_travel_in_the_project_file_and_the_zip_export(client: TestClient, monkeypatch: Any) -> None:
    from worker.exports import run_export

    monkeypatch.setattr("services.exports.send_export", lambda _id: None)
    tid = create(client)["id"]
    plain = client.get(f"/api/transitions/{tid}/project").content
    assert b'"notes"' not in plain  # files without notes keep their bytes
    note = add(client, tid, t=0.2, t_end=0.3, text="hold longer", author="Ada").json()
    client.post(f"/api/notes/{note['id']}/replies", json={"text": "done", "author": "Bo"})
    client.patch(f"/api/notes/{note['id']}", json={"status": "resolved"})
    add(client, tid, t=0.8, text="too dark")

    exported = client.get(f"/api/transitions/{tid}/project").content
    project = json.loads(exported)
    assert [(n["t"], n["text"], n["status"]) for n in project["notes"]] == [
        (0.2, "hold longer", "resolved"), (0.8, "too dark", "open")
    ]  # fmt: skip
    imported = client.post("/api/projects", content=exported, headers={"content-type": "application/json"})
    assert imported.status_code == 201, imported.text
    new_id = imported.json()["id"]
    strip = [{k: v for k, v in n.items() if k not in ("id", "created_at")} for n in notes_of(client, new_id)]
    for n in strip:
        n["replies"] = [(r["text"], r["author"]) for r in n["replies"]]
    assert strip == [
        {"t": 0.2, "t_end": 0.3, "text": "hold longer", "author": "Ada", "status": "resolved",
         "replies": [("done", "Bo")]},
        {"t": 0.8, "t_end": None, "text": "too dark", "author": "", "status": "open", "replies": []},
    ]  # fmt: skip
    assert client.get(f"/api/transitions/{new_id}/project").content == exported

    bad = {**project, "notes": [{"t": 0.5, "t_end": 0.1, "text": "x"}]}
    refused = client.post("/api/projects", json=bad)
    assert refused.status_code == 422 and "t_end" in refused.text

    # The zip export carries notes.json; a new note makes a new zip, not the cached one.
    render = client.post(f"/api/transitions/{tid}/renders").json()["id"]
    finish_by_hand(render)
    export = client.post(f"/api/renders/{render}/exports", json={"format": "zip"}).json()
    run_export(export["id"])
    with zipfile.ZipFile(io.BytesIO(client.get(f"/api/exports/{export['id']}/file").content)) as archive:
        carried = json.loads(archive.read("notes.json"))["notes"]
    assert [n["text"] for n in carried] == ["hold longer", "too dark"]
    assert carried[0]["replies"][0]["text"] == "done"
    add(client, tid, t=0.9, text="one more")
    again = client.post(f"/api/renders/{render}/exports", json={"format": "zip"}).json()
    assert again["id"] != export["id"]
    run_export(again["id"])
    with zipfile.ZipFile(io.BytesIO(client.get(f"/api/exports/{again['id']}/file").content)) as archive:
        assert len(json.loads(archive.read("notes.json"))["notes"]) == 3


def test_the_notes_card_shows_errors_inline_and_keeps_what_was_typed(client: TestClient) -> None:
    tid = create(client)["id"]
    page = client.get(f"/transitions/{tid}").text
    assert f'hx-get="/transitions/{tid}/notes"' in page  # the card's slot on the page
    bad = client.post(f"/transitions/{tid}/notes", data={"t": "1.4", "text": "keep me"}, headers=HX)
    assert bad.status_code == 422
    assert "t must be between 0 and 1" in bad.text and "keep me" in bad.text
    empty = client.post(f"/transitions/{tid}/notes", data={"t": "0.5", "text": ""}, headers=HX)
    assert empty.status_code == 422 and "1 to 2000 characters" in empty.text
    assert notes_of(client, tid) == []
    # A form posted from another site is refused like every other form of Segue's (app/security.py).
    forged = client.post(
        f"/transitions/{tid}/notes",
        data={"t": "0.5", "text": "forged"},
        headers={"Origin": "http://evil.example"},
    )
    assert forged.status_code == 403 and notes_of(client, tid) == []
    ok = client.post(
        f"/transitions/{tid}/notes", data={"t": "0.5", "text": "fine", "author": "Ada"}, headers=HX
    )
    assert ok.status_code == 200 and "Note added" in ok.text and 'data-css-left="50.0"' in ok.text
    note = notes_of(client, tid)[0]
    resolved = client.post(
        f"/notes/{note['id']}/status", data={"status": "resolved", "show": "all"}, headers=HX
    )
    assert resolved.status_code == 200 and "Reopen" in resolved.text
    assert notes_of(client, tid)[0]["status"] == "resolved"
