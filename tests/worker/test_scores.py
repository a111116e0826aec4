"""The confusion map through the whole spine: the worker scores frames, reused frames keep their scores,
and GET /api/renders/{id}/scores serves progress, change, flags and the summary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from engine.scorers import FrameScoreValues
from tests.support.live import render_and_stream, small_transition

pytestmark = pytest.mark.redis


def _score_rows(scorer: str | None = None) -> int:
    from infra.db import new_session
    from infra.tables import FrameScore

    with new_session() as db:
        query = select(func.count(FrameScore.id))
        if scorer:
            query = query.where(FrameScore.scorer == scorer)
        return db.scalar(query) or 0


def test_frames_are_scored_once_and_reused_frames_keep_their_scores(stack_factory: Any) -> None:
    stack = stack_factory(mode="embedded", database="sqlite")
    client = stack.client
    transition = small_transition(client, frames=4, batch_size=2)
    first, _ = render_and_stream(client, transition["id"])
    assert first["status"] == "done", stack.log.read_text()[-3000:]

    scores = client.get(f"/api/renders/{first['id']}/scores").json()
    # segue-tiny ships no CLIP and none is cached here: the U-Net's own features and SSIM score it.
    assert scores["scorers"] == ["unet", "ssim"] and scores["scorer"] == "unet"
    assert [f["index"] for f in scores["frames"]] == [0, 1, 2, 3]
    frame = scores["frames"][1]
    assert set(frame) == {"index", "t", "progress", "change", "similarity", "flags"}
    assert set(frame["similarity"]) == {"a", "b"}
    assert all(isinstance(f["progress"], float) for f in scores["frames"])
    assert (
        all(isinstance(f["change"], float) for f in scores["frames"][:-1])
        and scores["frames"][-1]["change"] is None
    )
    summary = scores["summary"]
    assert set(summary) >= {"smoothness", "max_jump", "ppl", "pdv", "crossing_t", "monotonicity", "scorer"}
    assert 0.0 <= summary["smoothness"] <= 1.0 and summary["frames_scored"] == 4
    assert _score_rows() == 8  # 4 frames x 2 scorers

    client.post(
        f"/api/transitions/{transition['id']}/keyframes", json={"position": 0.5, "prompt": "a city garden"}
    )
    again, _ = render_and_stream(client, transition["id"])
    assert again["stats"]["frames_reused"] == 2 and again["stats"]["frames_computed"] == 2
    assert _score_rows() == 8 + 2 * 2  # only the two computed frames were scored
    rescored = client.get(f"/api/renders/{again['id']}/scores?scorer=ssim").json()
    assert rescored["scorer"] == "ssim" and rescored["summary"]["frames_scored"] == 4

    missing = client.get(f"/api/renders/{again['id']}/scores?scorer=clip")
    assert missing.status_code == 422 and "clip" in missing.json()["errors"]["scorer"]
    assert client.get("/api/renders/999999/scores").status_code == 404
    page = client.get(f"/transitions/{transition['id']}").text
    assert 'class="plot-progress"' in page and 'class="plot-change"' in page


class CountingScorer:
    name = "count"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def score(self, images: list[Any], prompts: list[tuple[str, str]]) -> list[FrameScoreValues]:
        self.calls.append(len(images))
        return [FrameScoreValues(embedding=np.ones(4, np.float32) * i) for i in range(len(images))]


def test_a_frame_key_is_scored_once_per_scorer(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker import scoring

    counting = CountingScorer()
    monkeypatch.setattr(scoring, "scorers_for", lambda engine: [counting])
    prompts = [("a", "b")] * 3
    assert scoring.score_and_store(None, ["i0", "i1", "i2"], ["k0", "k1", "k2"], prompts) == 3
    # The same keys again, plus one new: only the new one is scored.
    assert scoring.score_and_store(None, ["i0", "i1", "i3"], ["k0", "k1", "k3"], prompts) == 1
    assert counting.calls == [3, 1]
    assert _score_rows("count") == 4
