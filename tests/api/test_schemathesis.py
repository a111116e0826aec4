"""Hostile input, generated from the OpenAPI schema (issue 13, finding 7): schemathesis against the app.

Every operation of the API (the event streams aside: they stream until a render ends) gets up to
MAX_EXAMPLES generated requests, valid and invalid, on SQLite and on PostgreSQL, against a database that
holds a transition with a keyframe, a render, a share link and an export. Checked on every answer:
no server error (5xx other than the documented 503), its status code is one the schema documents for that
operation, its content type and body match the schema.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi import checks as openapi_checks  # noqa: E402

from tests.support.isolation import without_reaper  # noqa: E402

MAX_EXAMPLES = int(os.environ.get("SEGUE_SCHEMATHESIS_EXAMPLES", "20"))


def no_server_error(ctx: Any, response: Any, case: Any) -> None:
    """5xx is a failure; so is 503 here (database and queue are up), except /healthz: no worker runs."""
    if response.status_code >= 500 and not (response.status_code == 503 and case.path == "/healthz"):
        raise AssertionError(f"server error {response.status_code}: {response.text[:500]}")


CHECKS = [
    no_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]


def _seed(client: Any) -> None:
    """Something for generated ids to find: id 1 of a transition, keyframe, render, link and export."""
    created = client.post(
        "/api/transitions", json={"start_prompt": "a city", "end_prompt": "a forest", "frames": 3, "steps": 2}
    )
    assert created.status_code == 201, created.text
    tid = created.json()["id"]
    client.post(f"/api/transitions/{tid}/keyframes", json={"position": 0.5, "prompt": "a garden"})
    client.post(f"/api/transitions/{tid}/renders")
    client.post(f"/api/transitions/{tid}/links", json={"role": "view"})


def _operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    return [op for op in operations if not op.path.endswith("/events")]  # streams run until a render ends


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_api_answers_every_generated_request_within_its_schema(
    database: str, sent_tasks: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    from fastapi.testclient import TestClient
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable

    from app.main import create_app

    # Nothing reaches a broker or a worker: planning tasks are dropped, render batches recorded.
    monkeypatch.setattr("services.rendering.send_plan_render", lambda *_: None)
    monkeypatch.setattr("services.rendering.broker_error", lambda: None)
    without_reaper(monkeypatch)
    app = create_app()
    with TestClient(app) as client:
        _seed(client)
    generation = schemathesis.GenerationMode(mode)
    failures: list[str] = []
    calls: list[str] = []
    operations = _operations(app)
    assert len(operations) >= 30
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=generation))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            calls.append(operation.label)  # noqa: B023 (the loop's operation, used at once)
            case.call_and_validate(checks=CHECKS)

        try:
            check()
        except Unsatisfiable:  # nothing to make invalid (no parameters, no body): nothing to try
            continue
        except BaseException as exc:  # collect every operation's failure, then report them all
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    print(f"{len(calls)} requests over {len(operations)} operations ({mode})")
    assert not failures, f"{len(failures)} of {len(operations)} operations failed:\n\n" + "\n\n".join(
        failures
    )
