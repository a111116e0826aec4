"""Neighbour reuse as a transition setting: its range in the API (422) and the form, the project file, and a
render on the tiny model whose shared in-betweens get new frame keys while every other frame keeps its."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

BODY = {"start_prompt": "a futuristic cityscape", "end_prompt": "a girl in a magical forest", "seed": 42}


def create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/transitions", json={**BODY, "frames": 5, "steps": 4, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("value", [1.5, -0.1, "often"])
def test_a_value_out_of_range_is_a_422_naming_the_field_and_nothing_is_saved(
    client: TestClient, value: Any
) -> None:
    response = client.post("/api/transitions", json={**BODY, "neighbour_reuse_from": value})
    assert response.status_code == 422
    assert "neighbour_reuse_from" in response.text
    if value != "often":
        assert "neighbour_reuse_from must be a finite number between 0 and 1" in response.text
    t = create(client)
    assert t["neighbour_reuse_from"] == 1.0  # off by default
    patched = client.patch(f"/api/transitions/{t['id']}", json={"neighbour_reuse_from": value, "steps": 9})
    assert patched.status_code == 422 and "neighbour_reuse_from" in patched.text
    again = client.get(f"/api/transitions/{t['id']}").json()
    assert (again["neighbour_reuse_from"], again["steps"]) == (1.0, 4)


def test_the_form_offers_it_with_the_other_savings_and_says_what_is_wrong_inline(client: TestClient) -> None:
    page = client.get("/transitions/new").text
    assert 'name="neighbour_reuse_from"' in page
    speed = page[page.index("Fewer U-Net evaluations") :]
    assert speed.index('name="neighbour_reuse_from"') < speed.index("</fieldset>")
    form = {
        "start_prompt": BODY["start_prompt"],
        "end_prompt": BODY["end_prompt"],
        "neighbour_reuse_from": "2",
    }
    response = client.post("/transitions", data=form)
    assert response.status_code in (200, 422)
    assert "neighbour_reuse_from must be a finite number between 0 and 1" in response.text


def test_the_project_file_carries_it(client: TestClient) -> None:
    t = create(client, in_between="shared", neighbour_reuse_from=0.6)
    project = json.loads(client.get(f"/api/transitions/{t['id']}/project").content)
    assert project["settings"]["neighbour_reuse_from"] == 0.6
    project["title"] = "copy"
    imported = client.post("/api/projects", json=project)
    assert imported.status_code == 201, imported.text
    assert imported.json()["neighbour_reuse_from"] == 0.6


@pytest.fixture
def run_batches(
    client: TestClient,
    sent_tasks: list[tuple[int, list[int]]],
    models_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
):  # type: ignore[no-untyped-def]
    """Run the queued render batches in this process, in the order they were queued."""
    import torch

    from tests.support.isolation import reset_caches

    torch.set_num_threads(1)
    monkeypatch.setenv("SEGUE_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("SEGUE_WORKER_DEVICE", "cpu")
    reset_caches()

    def run() -> None:
        from worker.render import run_batch

        while sent_tasks:
            run_batch(*sent_tasks.pop(0))

    return run


def test_on_only_the_shared_in_betweens_get_new_keys_and_the_render_finishes(
    client: TestClient, run_batches
) -> None:  # type: ignore[no-untyped-def]
    t = create(client, model="segue-tiny", in_between="shared", shared_from_step=2, batch_size=2)
    first = client.post(f"/api/transitions/{t['id']}/renders").json()
    run_batches()
    client.patch(f"/api/transitions/{t['id']}", json={"neighbour_reuse_from": 0.5})
    second = client.post(f"/api/transitions/{t['id']}/renders").json()
    run_batches()
    done = client.get(f"/api/renders/{second['id']}").json()
    assert done["status"] == "done" and all(f["url"] for f in done["frames"])
    assert [f["start_step"] for f in done["frames"]] == [0, 2, 0, 2, 0]
    # The anchors are the frames of the first render (reused); the in-betweens are new frames.
    assert [f["reused"] for f in done["frames"]] == [True, False, True, False, True]
    before = client.get(f"/api/renders/{first['id']}").json()
    assert before["status"] == "done"
