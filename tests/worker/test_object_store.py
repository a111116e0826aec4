"""Frames and exports in an S3-compatible object store, against a real S3 server started here (moto's).

With SEGUE_FRAME_STORE=s3://... the web process and the workers share nothing on disk: a worker process
writes frames into the bucket, the app serves them at the same /media/frames URLs, exports are encoded
from frames fetched out of the bucket and downloaded from it, and /healthz says when the store is away.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.sse import read_sse
from tests.support.waiting import wait_for

BUCKET = "segue-frames"
CREDENTIALS = {"s3_access_key_id": "segue-test", "s3_secret_access_key": "segue-test-secret"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class S3Server:
    """moto's S3 server in a thread of this process, on its own port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = _free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.url = f"http://127.0.0.1:{self.port}"
        self.running = False

    def start(self) -> None:
        self.server.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.server.stop()
            self.running = False


@pytest.fixture
def s3() -> Iterator[S3Server]:
    pytest.importorskip("moto.server")
    server = S3Server()
    server.start()
    yield server
    server.stop()


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, format="PNG")
    return out.getvalue()


def _objects(store: Any) -> list[str]:
    listed = store.client.list_objects_v2(Bucket=store.bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_the_s3_store_keeps_frames_and_exports_under_its_prefix(s3: S3Server, tmp_path: Path) -> None:
    from app.downloads import stored_response
    from infra.storage import S3FrameStore, StoreError

    store = S3FrameStore(
        f"s3://{BUCKET}/team-a", s3.url, CREDENTIALS["s3_access_key_id"], CREDENTIALS["s3_secret_access_key"]
    )
    with pytest.raises(StoreError, match=BUCKET):
        store.check()  # a fresh server has no bucket yet
    store.ensure_bucket()
    store.ensure_bucket()  # idempotent: a second start-up finds it
    store.check()

    key, other = "ab" + "1" * 62, "cd" + "2" * 62
    red = _png((255, 0, 0))
    assert not store.exists(key)
    store.write(key, red)
    assert store.exists(key) and not store.exists(other)
    assert store.read(key) == red
    with pytest.raises(FileNotFoundError):
        store.read(other)
    assert store.url(key) == f"/media/frames/ab/{key}.png"  # served by the web app, same URLs as local

    store.write(other, _png((0, 0, 255)))
    absent = ["ef" + f"{i:062d}" for i in range(20)]
    assert store.existing([key, other, *absent, key]) == {key, other}  # many HEADs at once
    with store.files([key, other, key]) as paths:
        assert set(paths) == {key, other}
        assert paths[key].read_bytes() == red  # fetched to this machine for the encoders
        scratch = paths[key].parent
    assert not scratch.exists()  # and cleaned up after

    source = tmp_path / "film.mp4"
    source.write_bytes(bytes(range(256)) * 40)
    name = "f" * 40 + ".mp4"
    assert not store.has_export(name)
    assert store.put_export(name, source) == 10240
    assert store.has_export(name)
    assert _objects(store) == [
        f"team-a/exports/{name}",
        f"team-a/frames/ab/{key}.png",
        f"team-a/frames/cd/{other}.png",
    ]

    whole = stored_response(store.open_export(name), "video/mp4", {"Content-Disposition": "attachment"})
    assert whole.status_code == 200 and whole.headers["content-length"] == "10240"
    part = stored_response(store.open_export(name, range_header="bytes=256-259"), "video/mp4", {})
    assert part.status_code == 206  # browsers seek in a video with ranges
    assert part.headers["content-range"] == "bytes 256-259/10240" and part.headers["content-length"] == "4"

    store.delete_export(name)
    assert not store.has_export(name)

    # A public bucket (or a CDN in front) can serve frames to browsers directly.
    public = S3FrameStore(f"s3://{BUCKET}/team-a", s3.url, public_url="https://cdn.example.com/")
    assert public.url(key) == f"https://cdn.example.com/team-a/frames/ab/{key}.png"

    s3.stop()
    with pytest.raises(StoreError, match="not reachable"):
        store.check()


def test_a_bad_store_setting_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pydantic import ValidationError

    from tests.support.isolation import configure

    configure(monkeypatch, tmp_path, frame_store="ftp://somewhere")
    from infra.config import Settings

    with pytest.raises(ValidationError, match="frame_store"):
        Settings()


@pytest.mark.redis
def test_workers_and_web_share_frames_and_exports_only_through_the_bucket(
    stack_factory: Any, s3: S3Server, tmp_path: Path
) -> None:
    from infra.storage import get_store, prepare_store

    stack = stack_factory(
        mode="distributed", frame_store=f"s3://{BUCKET}/segue", s3_endpoint_url=s3.url, **CREDENTIALS
    )
    # The worker process got the same settings through its environment; `segue run`/`worker`/`migrate` make
    # the bucket at start-up. Here the test does, as the worker has already started.
    store = prepare_store()
    client = stack.client
    transition = client.post(
        "/api/transitions",
        json={"start_prompt": "a red cube", "end_prompt": "a blue sphere", "frames": 4, "steps": 3},
    )
    assert transition.status_code == 201, transition.text
    render = client.post(f"/api/transitions/{transition.json()['id']}/renders")
    assert render.status_code == 202, render.text
    render_id = render.json()["id"]
    events = read_sse(client, f"/api/renders/{render_id}/events")
    detail = client.get(f"/api/renders/{render_id}").json()
    assert detail["status"] == "done", stack.log.read_text()[-3000:]
    assert sorted(json.loads(e["data"])["index"] for e in events if e["event"] == "frame") == [0, 1, 2, 3]

    # Nothing on local disk: every frame is an object in the bucket, served by the app at its usual URL.
    assert not list((tmp_path / "data").rglob("*.png"))
    stored = [o for o in _objects(store) if o.startswith("segue/frames/")]
    assert len(stored) == 4
    for frame in detail["frames"]:
        response = client.get(frame["url"])
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert "immutable" in response.headers["cache-control"]
        key = frame["url"].rsplit("/", 1)[1].removesuffix(".png")
        assert response.content == store.read(key)
        with Image.open(io.BytesIO(response.content)) as image:
            assert image.size == (64, 64)
    # Only well-formed frame URLs reach the store.
    for bad in ("/media/frames/zz/" + "a" * 64 + ".png", "/media/frames/ab/..%2F..%2Fsecret.png"):
        assert client.get(bad).status_code == 404

    # A second render of the same transition reuses the bucket's frames (cache hits checked in the bucket).
    again = client.post(f"/api/transitions/{transition.json()['id']}/renders").json()
    wait_for(lambda: client.get(f"/api/renders/{again['id']}").json()["status"] == "done", what="reuse")
    assert client.get(f"/api/renders/{again['id']}").json()["stats"]["frames_reused"] == 4

    # An export is encoded from frames fetched out of the bucket and stored back into it.
    export = client.post(f"/api/renders/{render_id}/exports", json={"format": "gif", "fps": 4})
    assert export.status_code == 202, export.text
    export_id = export.json()["id"]
    done = wait_for(
        lambda: (e := client.get(f"/api/exports/{export_id}").json())["status"] in ("done", "failed") and e,
        what="the export",
    )
    assert done["status"] == "done", done
    assert any(o.startswith("segue/exports/") for o in _objects(store))
    download = client.get(done["url"])
    assert download.status_code == 200 and download.content[:6] == b"GIF89a"
    assert len(download.content) == done["size_bytes"]
    assert "attachment" in download.headers["content-disposition"]

    health = client.get("/healthz").json()
    store_health = health["frame_store"]
    assert store_health["ok"] is True and "s3://segue-frames/segue/" in store_health["store"]

    # The store goes away: /healthz names it, frames answer 503 (not 500), nothing crashes.
    s3.stop()
    assert get_store() is store
    health = client.get("/healthz")
    assert health.status_code == 503 and "frame store" in health.json()["down"]
    assert client.get(detail["frames"][0]["url"]).status_code == 503
    assert client.get(done["url"]).status_code == 503  # the export's download
    listed = f"/api/transitions/{transition.json()['id']}/renders"
    renders = client.get(listed).json()
    refused = client.post(listed)  # a render's cache hits are checked in the store
    assert refused.status_code == 503 and "frame store" in refused.json()["detail"]
    assert client.get(listed).json() == renders  # nothing half-saved
