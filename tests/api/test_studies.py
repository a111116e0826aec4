"""Studies (docs/studies.md) through the API on SQLite and PostgreSQL: making a study and its 422s,
participant links answering (one answer per item, 409 for a second, resume after a reload, 204 when done),
what a participant's token cannot open, CSV and JSON exports, the results on planted answers and scores."""

from __future__ import annotations

import csv
import io
import math
import threading
from array import array
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

from tests.support.api import bearer, create, make_link
from tests.support.studies import OWNER_SECRET, answer_all, finished_render, participant, study


def store_scores(render_id: int, scorer: str, vectors: dict[int, list[float]]) -> None:
    """What a scorer would store for the render's frames (by frame index)."""
    from infra.db import new_session
    from infra.tables import FrameScore, Render

    with new_session() as db:
        render = db.get(Render, render_id)
        assert render is not None
        for frame in render.frames:
            if frame.index in vectors:
                blob = array("f", vectors[frame.index]).tobytes()
                db.add(FrameScore(frame_key=frame.key, scorer=scorer, embedding=blob))
        db.commit()


def test_a_study_is_answered_through_participant_links_resumes_and_exports(client: TestClient) -> None:
    render_id = finished_render(client)
    made = study(client, [render_id], tasks=["rate", "mark", "triplets"], concept="the forest",
                 instructions="About five minutes.\n\nYou may stop at any time.")  # fmt: skip
    assert {"id", "title", "render_ids", "tasks", "concept", "triplets", "seed", "items"} <= set(made)
    assert (made["items"], made["tasks"], made["concept"]) == (6, ["rate", "mark", "triplets"], "the forest")

    one = participant(client, made["id"], label="P1")
    assert set(one) >= {"id", "token", "url"} and one["url"] == f"/p/{one['token']}"
    token = one["token"]
    page = client.get(one["url"])
    assert page.status_code == 200 and "About five minutes." in page.text and "0 of 6 answered" in page.text

    first = client.get(f"/api/p/{token}/next").json()
    assert first["kind"] == "rate" and first["position"] == 1 and first["total"] == 6
    assert first["render_id"] == render_id and len(first["frames"]) == 6
    assert all(f["url"].startswith("/media/") for f in first["frames"])
    again = client.get(f"/api/p/{token}/next").json()  # a reload: the same unanswered item
    assert again["item_id"] == first["item_id"]

    body = {"item_id": first["item_id"], "answer": 4, "ms": 1234, "comment": "the trees pop in"}
    saved = client.post(f"/api/p/{token}/answers", json=body)
    assert saved.status_code == 201 and saved.json()["answered"] == 1
    twice = client.post(f"/api/p/{token}/answers", json={**body, "answer": 1})
    assert twice.status_code == 409 and "first answer stands" in twice.json()["detail"]

    resumed = client.get(f"/api/p/{token}/next").json()  # after a reload: the next one, position 2
    assert resumed["kind"] == "mark" and resumed["position"] == 2 and "the forest" in resumed["question"]
    assert "1 of 6 answered" in client.get(one["url"]).text

    rest = answer_all(
        client, token, lambda item: 0.4 if item["kind"] == "mark" else item["frames"][1]["index"]
    )
    assert [i["kind"] for i in rest] == ["mark", "triplet", "triplet", "triplet", "triplet"]
    assert all(len(i["frames"]) == 3 for i in rest[1:])
    assert client.get(f"/api/p/{token}/next").status_code == 204

    as_json = client.get(f"/api/studies/{made['id']}/answers").json()
    assert len(as_json) == 6 and as_json[0]["comment"] == "the trees pop in" and as_json[0]["ms"] == 1234
    exported = client.get(f"/api/studies/{made['id']}/answers.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    back = [
        {**row, "participant_id": int(row["participant_id"]), "item_id": int(row["item_id"]),
         "render_id": int(row["render_id"]), "frames": [int(f) for f in row["frames"].split()],
         "answer": float(row["answer"]) if row["kind"] == "mark" else int(row["answer"]),
         "ms": int(row["ms"])}
        for row in rows
    ]  # fmt: skip
    assert back == as_json  # the CSV carries exactly what the JSON does

    listed = client.get(f"/api/studies/{made['id']}/participants").json()
    assert [(p["id"], p["answered"], p["label"]) for p in listed] == [(one["id"], 6, "P1")]
    results = client.get(f"/api/studies/{made['id']}/results").json()
    assert results["answers"] == 6 and results["marks"][0]["n"] == 1
    assert results["marks"][0]["median"] == 0.4 and sum(results["marks"][0]["histogram"]) == 1


def test_the_same_seed_makes_the_same_triplets(client: TestClient) -> None:
    render_id = finished_render(client, frames=8)

    def triplets(seed: int) -> list[list[int]]:
        made = study(client, [render_id], triplets=10, seed=seed)
        token = participant(client, made["id"])["token"]
        items = answer_all(client, token, lambda item: item["frames"][0]["index"])
        return sorted([f["index"] for f in i["frames"]] for i in items)

    assert triplets(5) == triplets(5) != triplets(6)


def test_bad_studies_are_422_naming_the_field_and_nothing_is_saved(client: TestClient) -> None:
    render_id = finished_render(client, frames=3)
    unfinished = client.post(f"/api/transitions/{create(client)['id']}/renders").json()["id"]
    short = finished_render(client, frames=2)
    cases = [
        ({"render_ids": [render_id, 999]}, "render_ids", "999 do not exist"),
        ({"render_ids": []}, "render_ids", "1 to 50 renders"),
        ({"render_ids": [unfinished]}, "render_ids", "only finished (done) renders"),
        ({"render_ids": [short]}, "render_ids", "3 or more finished frames"),
        ({"tasks": []}, "tasks", "at least one of: rate, mark, triplets"),
        ({"tasks": ["rank"]}, "tasks.0", "'rate', 'mark' or 'triplets'"),
        ({"tasks": ["mark"]}, "concept", "name the concept"),
        ({"tasks": ["mark"], "concept": "   "}, "concept", "name the concept"),
        ({"triplets": 0}, "triplets", "1"),
        ({"triplets": 501}, "triplets", "500"),
        ({"seed": -1}, "seed", "0"),
        ({"title": " "}, "title", "1 to 200 characters"),
        ({"instructions": "x" * 4001}, "instructions", "at most 4000 characters"),
        ({"sampler": "weighted"}, "sampler", "uniform"),
        ({"colour": "red"}, "colour", "colour"),
    ]
    for body, field, words in cases:
        full = {"title": "T", "render_ids": [render_id], "tasks": ["triplets"], **body}
        response = client.post("/api/studies", json=full)
        assert response.status_code == 422, (body, response.text)
        assert words in response.json()["errors"][field], (body, response.json())
    assert client.get("/api/studies").json() == []
    assert client.post("/api/studies/999/participants", json={}).status_code == 404
    assert client.get("/api/studies/999/results").status_code == 404


def test_bad_answers_are_422_naming_the_field_and_nothing_is_saved(client: TestClient) -> None:
    render_id = finished_render(client)
    made = study(client, [render_id], tasks=["rate", "mark", "triplets"], concept="a tree", triplets=1)
    other = study(client, [render_id], triplets=1)
    token = participant(client, made["id"])["token"]
    items = {}
    while len(items) < 3:  # the three kinds, without answering them
        item = client.get(f"/api/p/{token}/next").json()
        items[item["kind"]] = item
        if len(items) < 3:
            value = {"rate": 3, "mark": 0.5}.get(item["kind"], item["frames"][0]["index"])
            client.post(
                f"/api/p/{token}/answers", json={"item_id": item["item_id"], "answer": value, "ms": 5}
            )
    triplet = items["triplet"]
    shown = [f["index"] for f in triplet["frames"]]
    not_shown = next(i for i in range(6) if i not in shown)
    foreign = client.get(f"/api/p/{participant(client, other['id'])['token']}/next").json()["item_id"]
    cases = [
        (
            {"item_id": triplet["item_id"], "answer": not_shown},
            "answer",
            f"one of its frame indices: {shown[0]}",
        ),
        ({"item_id": triplet["item_id"], "answer": shown[0], "ms": -1}, "ms", "0"),
        ({"item_id": triplet["item_id"], "answer": shown[0], "ms": 3_600_001}, "ms", "3600000"),
        ({"item_id": foreign, "answer": 1}, "item_id", "not part of this participant's study"),
        ({"item_id": 99999, "answer": 1}, "item_id", "not part of this participant's study"),
        ({"item_id": triplet["item_id"], "answer": "odd"}, "answer", "answer"),
        ({"item_id": triplet["item_id"], "answer": True}, "answer", "not true or false"),
        (
            {"item_id": triplet["item_id"], "answer": shown[0], "comment": "x" * 2001},
            "comment",
            "at most 2000",
        ),
    ]
    for body, field, words in cases:
        response = client.post(f"/api/p/{token}/answers", json={"ms": 10, **body})
        assert response.status_code == 422, (body, response.text)
        assert words in response.json()["errors"][field], (body, response.json())
    assert client.get(f"/api/p/{token}/next").json()["item_id"] == triplet["item_id"]  # nothing was saved

    # Range checks per kind, on a fresh participant whose first items are the rating and the mark.
    fresh = participant(client, made["id"])["token"]
    rate = client.get(f"/api/p/{fresh}/next").json()
    for value, words in ((0, "from 1 to 5"), (6, "from 1 to 5"), (2.5, "whole number")):
        response = client.post(
            f"/api/p/{fresh}/answers", json={"item_id": rate["item_id"], "answer": value, "ms": 1}
        )
        assert response.status_code == 422 and words in response.json()["errors"]["answer"]
    client.post(f"/api/p/{fresh}/answers", json={"item_id": rate["item_id"], "answer": 5, "ms": 1})
    mark = client.get(f"/api/p/{fresh}/next").json()
    for value in (-0.1, 1.5):
        response = client.post(
            f"/api/p/{fresh}/answers", json={"item_id": mark["item_id"], "answer": value, "ms": 1}
        )
        assert (
            response.status_code == 422 and "from 0 (start) to 1 (end)" in response.json()["errors"]["answer"]
        )
    assert client.get("/api/p/not-a-token/next").status_code == 404
    assert (
        client.post("/api/p/not-a-token/answers", json={"item_id": 1, "answer": 1, "ms": 1}).status_code
        == 404
    )


def test_a_participant_answers_but_reads_no_answers_results_or_anything_else(app_with: Any) -> None:
    """Off loopback (the owner signs in): a participant has only their link; it answers and reads nothing."""
    owner = {"Authorization": f"Bearer {OWNER_SECRET}", "Origin": "http://testserver"}
    app = app_with(host="0.0.0.0", owner_token=OWNER_SECRET, max_token_failures="1000")
    with (
        TestClient(app, headers=owner) as researcher,
        TestClient(app, headers={"Origin": "http://testserver"}) as person,
    ):
        render_id = finished_render(researcher)
        made = study(researcher, [render_id], tasks=["rate", "triplets"], triplets=2)
        mine = participant(researcher, made["id"])
        theirs = participant(researcher, made["id"])
        answer_all(
            researcher,
            theirs["token"],
            lambda item: 2 if item["kind"] == "rate" else item["frames"][0]["index"],
        )

        token = mine["token"]
        assert person.get(mine["url"]).status_code == 200
        item = person.get(f"/api/p/{token}/next").json()
        assert item["position"] == 1  # their own progress, not the other participant's
        sent = person.post(f"/api/p/{token}/answers", json={"item_id": item["item_id"], "answer": 5, "ms": 9})
        assert sent.status_code == 201

        sid = made["id"]
        reads = [
            *(
                f"/api/studies/{sid}{end}"
                for end in ("/results", "/answers", "/answers.csv", "/participants", "")
            ),
            "/api/studies",
            f"/api/renders/{render_id}",
            f"/api/renders/{render_id}/scores",
        ]
        for path in reads:
            assert person.get(path).status_code == 401, path  # no credential
            as_token = person.get(path, headers={"Authorization": f"Bearer {token}"})
            assert as_token.status_code == 404, path  # a participant token is no credential at all
            assert "2 " not in as_token.text and theirs["token"] not in as_token.text
        writes = [("POST", "/api/studies", {"title": "x", "render_ids": [render_id], "tasks": ["rate"]}),
                  ("POST", f"/api/studies/{sid}/participants", {}),
                  ("POST", f"/api/transitions/{create(researcher)['id']}/renders", None)]  # fmt: skip
        for method, path, body in writes:
            assert person.request(method, path, json=body).status_code == 401, path
            refused = person.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 404, path
        page = person.get(f"/studies/{sid}", headers={"Accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/signin"
        # A share link of a transition opens no study either.
        tid = create(researcher)["id"]
        link = make_link(researcher, tid, "edit")
        assert person.get(f"/api/studies/{sid}/results", headers=bearer(link)).status_code == 403
        assert person.get(f"/studies/{sid}", headers=bearer(link)).status_code == 403
        assert 'href="/studies"' not in person.get(f"/transitions/{tid}", headers=bearer(link)).text
        assert 'href="/studies"' in researcher.get(f"/transitions/{tid}").text
        # Nothing the participant sent changed the study, and their one answer is the only new one.
        assert len(researcher.get(f"/api/studies/{sid}/answers").json()) == 3 + 1
        assert researcher.get("/api/studies").json()[0]["participants"] == 2


def test_results_on_planted_answers_and_scores_with_a_row_per_stored_unet_block(client: TestClient) -> None:
    """Frames on a line: `clip` sees the line (people pick the far frame), `ssim` thumbnails are noise, and a
    per-block U-Net feature stored as `unet/up_blocks.1` gets its own row."""
    first, second = finished_render(client, frames=8), finished_render(client, frames=8, seed=4)
    for render_id in (first, second):
        line = {i: [math.cos(i * 0.2), math.sin(i * 0.2)] for i in range(8)}
        store_scores(render_id, "clip", line)
        store_scores(render_id, "unet/up_blocks.1", line)
        store_scores(
            render_id, "ssim", {i: [((i * 7919 + k * 104729) % 97) / 97 for k in range(16)] for i in range(8)}
        )
    made = study(client, [first, second], tasks=["rate", "triplets"], triplets=12)

    def far_one(item: dict[str, Any]) -> int:
        if item["kind"] == "rate":
            return 5 if item["render_id"] == first else 2
        idx = [f["index"] for f in item["frames"]]
        spread = [abs(idx[0] - idx[1]), abs(idx[0] - idx[2]), abs(idx[1] - idx[2])]
        odd = [2, 1, 0][spread.index(min(spread))]
        return idx[odd]

    for _ in range(3):
        answer_all(client, participant(client, made["id"])["token"], far_one)
    results = client.get(f"/api/studies/{made['id']}/results").json()
    assert results["participants"] == 3 and results["answers"] == 3 * 14
    assert results["triplets"]["split_half"] == 1.0 and results["triplets"]["people_accuracy"] == 1.0
    assert results["ratings"]["alpha"] == 1.0
    rows = {r["name"]: r for r in results["distances"]}
    assert list(rows) == ["clip", "ssim", "pixels", "unet/up_blocks.1"]
    # Triplets with two equally close pairs (0, 2, 4) may break the tie either way: not all are 1.
    assert rows["clip"]["triplet_accuracy"] >= 0.75 and rows["clip"]["triplet_answers"] == 36
    assert rows["unet/up_blocks.1"]["triplet_accuracy"] == rows["clip"]["triplet_accuracy"]
    assert rows["ssim"]["triplet_accuracy"] < rows["clip"]["triplet_accuracy"]

    page = client.get(f"/studies/{made['id']}")
    assert page.status_code == 200
    for words in ('id="alpha">1.000', 'id="split-half">1.000', 'data-distance="unet/up_blocks.1"', "Copy"):
        assert words in page.text
    assert "style=" not in page.text and "<script>" not in page.text


def test_the_pages_make_a_study_add_participants_and_show_422s_inline(client: TestClient) -> None:
    render_id = finished_render(client)
    panel = client.get(f"/renders/{render_id}/export-panel").text  # the render's panel leads here
    assert f'href="/studies?render={render_id}"' in panel
    listing = client.get(f"/studies?render={render_id}")
    assert listing.status_code == 200 and f'value="{render_id}" checked' in listing.text
    bad = client.post("/studies", data={"title": "T", "render_ids": str(render_id), "tasks": "mark"})
    assert (
        bad.status_code == 422 and "name the concept" in bad.text and client.get("/api/studies").json() == []
    )
    form = {"title": "Forest", "render_ids": str(render_id), "tasks": ["rate", "triplets"], "triplets": "3"}
    made = client.post("/studies", data=form, follow_redirects=False)
    assert made.status_code == 303
    sid = made.headers["location"].rsplit("/", 1)[1]
    added = client.post(f"/studies/{sid}/participants", data={"label": "P7"}, follow_redirects=True)
    assert added.status_code == 200 and "P7" in added.text and "/p/" in added.text
    assert client.post(f"/studies/{sid}/participants", data={"label": "x" * 81}).status_code == 422


def test_participant_tokens_are_kept_out_of_the_access_log() -> None:
    from app.security import redact

    assert redact('"GET /api/p/SECRET/next HTTP/1.1"') == '"GET /api/p/…/next HTTP/1.1"'
    assert redact('"GET /p/SECRET HTTP/1.1"') == '"GET /p/… HTTP/1.1"'


def test_the_problems_sampler_and_a_deleted_render(client: TestClient) -> None:
    """Triplets drawn toward the map's problems (a jump planted in the stored scores); deleting a render's
    transition takes its items and answers, and the study still opens."""
    kept, dropped = finished_render(client, frames=8), finished_render(client, frames=8, seed=4)
    jump = {i: [1.0, 0.0] if i < 4 else [0.0, 1.0] for i in range(8)}  # frames 3 -> 4: the whole change
    store_scores(kept, "clip", jump)
    made = study(client, [kept, dropped], tasks=["rate", "triplets"], triplets=6, sampler="problems")
    assert made["sampler"] == "problems" and made["items"] == 2 + 6
    answer_all(client, participant(client, made["id"])["token"],
               lambda item: 3 if item["kind"] == "rate" else item["frames"][0]["index"])  # fmt: skip
    tid = client.get(f"/api/renders/{dropped}").json()["transition_id"]
    assert client.delete(f"/api/transitions/{tid}").status_code == 204
    rows = client.get(f"/api/studies/{made['id']}/answers").json()
    assert rows and {r["render_id"] for r in rows} == {kept}
    assert client.get(f"/api/studies/{made['id']}").json()["items"] == 1 + 3
    assert client.get(f"/api/studies/{made['id']}/results").status_code == 200
    assert client.get(f"/studies/{made['id']}").status_code == 200


def test_the_same_answer_posted_at_once_is_kept_once(client: TestClient) -> None:
    """Two tabs (or a retry) posting the same item together: one 201, the others 409, one row, never a 500."""
    made = study(client, [finished_render(client)], tasks=["rate"])
    token = participant(client, made["id"])["token"]
    item = client.get(f"/api/p/{token}/next").json()
    n = 6
    barrier = threading.Barrier(n)

    def send(rating: int) -> int:
        barrier.wait()
        body = {"item_id": item["item_id"], "answer": 1 + rating % 5, "ms": 10}
        return client.post(f"/api/p/{token}/answers", json=body).status_code

    with ThreadPoolExecutor(n) as pool:
        codes = sorted(pool.map(send, range(n)))
    assert codes == [201] + [409] * (n - 1)
    assert len(client.get(f"/api/studies/{made['id']}/answers").json()) == 1
