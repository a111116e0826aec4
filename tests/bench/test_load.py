"""200 viewers of one render on one web process each get every frame event exactly once (issue 13, finding 8).

A real server (`segue run`, distributed mode) and a real worker: before, redis.asyncio's pool of 100
connections (one blocking XREAD per viewer) made every viewer past the hundredth abort. Now each web
process follows a render's stream with one reader and fans its events out (infra/bus.Fanout).
The benchmark with latencies is `python -m bench.load`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from bench.chaos import Cluster, _wait
from bench.load import follow

pytestmark = [pytest.mark.redis, pytest.mark.slow]

VIEWERS = 200
FRAMES = 8


async def _watch(base: str, render_id: int) -> list[object]:
    limits = httpx.Limits(max_connections=VIEWERS + 10, max_keepalive_connections=VIEWERS + 10)
    async with httpx.AsyncClient(limits=limits) as client:
        return await asyncio.gather(
            *(follow(client, f"{base}/api/renders/{render_id}/events") for _ in range(VIEWERS)),
            return_exceptions=True,
        )


def test_200_viewers_of_one_render_each_get_every_frame_event_exactly_once(
    tmp_path: Path, models_dir: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "models").symlink_to(models_dir, target_is_directory=True)
    cluster = Cluster("distributed", data, None, lease=30)
    try:
        cluster.start_web()
        cluster.start_worker()
        _wait(
            lambda: httpx.get(cluster.url + "/healthz", timeout=5).status_code == 200,
            120,
            "the worker's heartbeat",
            interval=0.5,
        )
        body = {
            "start_prompt": "a city",
            "end_prompt": "a forest",
            "frames": FRAMES,
            "steps": 8,
            "batch_size": 1,
        }
        transition = httpx.post(cluster.url + "/api/transitions", json=body, timeout=30).json()
        render = httpx.post(cluster.url + f"/api/transitions/{transition['id']}/renders", timeout=30)
        assert render.status_code == 202, render.text
        results = asyncio.run(_watch(cluster.url, render.json()["id"]))
    finally:
        cluster.stop()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"{len(errors)} of {VIEWERS} streams failed, e.g. {errors[0]!r}"
    for result in results:
        assert isinstance(result, dict)
        assert Counter(result["frames"]) == Counter(range(FRAMES)), result["frames"]
        assert result["final"] == "done"
    log = (data / "chaos.log").read_text(errors="replace")
    assert "Too many connections" not in log
