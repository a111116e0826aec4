"""Exports and project files: the encoder's files read back with PyAV and Pillow, the API against a real
database (the export task run in-process), the browser's panel and upload, and a live worker round trip."""

from __future__ import annotations

import io
import json
import zipfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from services.exports import ExportOptions
from tests.support.renders import finish_by_hand, png
from tests.support.waiting import wait_for
from worker.encode import SourceFrame, durations_ms, encode, frame_name, playback

CITY = "a futuristic cityscape"
FOREST = "a girl in a magical forest"
HX = {"HX-Request": "true"}


@pytest.fixture
def frames(tmp_path: Path) -> list[SourceFrame]:
    out = []
    for index in range(6):
        path = tmp_path / "src" / f"{index}.png"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(png(index))
        out.append(SourceFrame(index=index, t=index / 5, path=path))
    return out


def read_video(path: Path) -> tuple[int, Fraction, tuple[int, int], str, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        rate = stream.average_rate
        size = (stream.codec_context.width, stream.codec_context.height)
        codec = stream.codec_context.name
    assert rate is not None
    return len(decoded), Fraction(rate), size, codec, decoded


# ---------------------------------------------------------------- the encoder alone


def test_playback_holds_keyframes_and_ping_pongs() -> None:
    ts = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    plain = playback(ts, [0.0, 1.0], ExportOptions(format="mp4"))
    assert plain == [(i, 1) for i in range(6)]
    held = playback(ts, [0.0, 0.61, 1.0], ExportOptions(format="mp4", fps=10, hold_keyframes=True))
    assert held == [(0, 10), (1, 1), (2, 1), (3, 10), (4, 1), (5, 10)]  # 0.61 holds its nearest frame, t=0.6
    looped = playback(ts, [], ExportOptions(format="gif", loop=True))
    assert [i for i, _ in looped] == [0, 1, 2, 3, 4, 5, 4, 3, 2, 1]  # the ends are not shown twice
    # GIF counts in 10 ms: 12 fps alternates 80 and 90 ms so the clock stays exact.
    durations = durations_ms([1] * 12, 12, unit_ms=10)
    assert sum(durations) == 1000 and set(durations) <= {80, 90}
    assert frame_name(7, 0.30434, 24) == "0007_t0.3043.png"


@pytest.mark.parametrize(("export_format", "codec"), [("mp4", "h264"), ("webm", "vp9")])
def test_videos_read_back_with_the_right_frames_size_and_fps(
    frames: list[SourceFrame], tmp_path: Path, export_format: str, codec: str
) -> None:
    out = encode(frames, tmp_path / f"a.{export_format}", ExportOptions(format=export_format, fps=12))
    count, rate, size, name, decoded = read_video(out)
    assert (count, rate, size, name) == (6, Fraction(12), (64, 48), codec)
    # The pictures survive the codec: each decoded frame is closest to its own source.
    sources = [np.asarray(Image.open(f.path).convert("RGB"), dtype=np.float32) for f in frames]
    for index, picture in enumerate(decoded):
        errors = [np.abs(picture.astype(np.float32) - s).mean() for s in sources]
        assert int(np.argmin(errors)) == index and errors[index] < 12, errors

    held = encode(
        frames,
        tmp_path / f"b.{export_format}",
        ExportOptions(format=export_format, fps=8, hold_keyframes=True, hold_seconds=0.5, loop=True),
        keyframe_positions=[0.0, 1.0],
    )
    count, rate, _, _, _ = read_video(held)
    # forward 0..5, back 4..1 = 10 frames; the two ends hold 0.5 s = 4 frames each.
    assert (count, rate) == (10 - 2 + 2 * 4, Fraction(8))


def test_gif_and_webp_frame_counts_and_timing(frames: list[SourceFrame], tmp_path: Path) -> None:
    gif = encode(frames, tmp_path / "a.gif", ExportOptions(format="gif", fps=10))
    with Image.open(gif) as image:
        assert image.n_frames == 6 and image.size == (64, 48) and image.info["loop"] == 0
        assert image.info["duration"] == 100
    looped = encode(frames, tmp_path / "b.gif", ExportOptions(format="gif", loop=True, hold_keyframes=True))
    with Image.open(looped) as image:
        assert image.n_frames == 10
    webp = encode(frames, tmp_path / "a.webp", ExportOptions(format="webp", fps=12))
    with Image.open(webp) as image:
        assert image.format == "WEBP" and image.n_frames == 6 and image.size == (64, 48)


def test_the_zip_names_frames_by_index_and_t_and_the_sheet_labels_them(
    frames: list[SourceFrame], tmp_path: Path
) -> None:
    archive = encode(frames, tmp_path / "a.zip", ExportOptions(format="zip"))
    with zipfile.ZipFile(archive) as opened:
        assert opened.namelist() == [
            "0000_t0.0000.png",
            "0001_t0.2000.png",
            "0002_t0.4000.png",
            "0003_t0.6000.png",
            "0004_t0.8000.png",
            "0005_t1.0000.png",
        ]
        assert opened.read("0003_t0.6000.png") == frames[3].path.read_bytes()  # the stored PNG, untouched
    again = encode(frames, tmp_path / "b.zip", ExportOptions(format="zip"))
    assert archive.read_bytes() == again.read_bytes()  # fixed timestamps: same frames, same bytes

    sheet = encode(
        frames, tmp_path / "s.png", ExportOptions(format="contact_sheet"), [0.0, 1.0], title="City"
    )
    with Image.open(sheet) as image:
        width, height = image.size
        assert image.format == "PNG" and width > 3 * 128 and height > 2 * 96  # 3 x 2 cells with labels


# ---------------------------------------------------------------- the API (export task run in-process)


def create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    body = {"start_prompt": CITY, "end_prompt": FOREST, "frames": 6, "seed": 7, "steps": 3, **overrides}
    response = client.post("/api/transitions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def sent_exports(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr("services.exports.send_export", sent.append)
    return sent


def frame_keys(render_id: int) -> list[str]:
    from sqlalchemy import select

    from infra.db import new_session
    from infra.tables import Frame

    with new_session() as db:
        return list(db.scalars(select(Frame.key).where(Frame.render_id == render_id).order_by(Frame.index)))


def test_exporting_a_render_that_is_not_done_is_refused(client: TestClient, sent_exports: list[int]) -> None:
    transition = create(client)
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
    response = client.post(f"/api/renders/{render_id}/exports", json={"format": "mp4"})
    assert response.status_code == 422
    assert "is queued; only a finished render" in response.json()["errors"]["status"]
    assert sent_exports == []
    assert client.post("/api/renders/999/exports", json={"format": "mp4"}).status_code == 404


def test_export_options_are_checked_naming_the_field(client: TestClient, sent_exports: list[int]) -> None:
    transition = create(client)
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
    finish_by_hand(render_id)
    bad = client.post(
        f"/api/renders/{render_id}/exports", json={"format": "mov", "fps": 0, "hold_seconds": 20, "speed": 2}
    )
    assert bad.status_code == 422
    errors = bad.json()["errors"]
    assert "'mp4'" in errors["format"] and errors["fps"] == "fps must be between 1 and 60 (got 0)"
    assert "hold_seconds must be" in errors["hold_seconds"] and "not a known field" in errors["speed"]
    assert sent_exports == []


def test_an_export_runs_is_cached_and_downloads_as_an_attachment(
    client: TestClient, sent_exports: list[int]
) -> None:
    from worker.exports import run_export

    transition = create(client, title="City → forest")
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
    finish_by_hand(render_id)

    started = client.post(f"/api/renders/{render_id}/exports", json={"format": "mp4", "fps": 10})
    assert started.status_code == 202
    body = started.json()
    assert body["status"] == "queued" and body["url"] is None and body["progress"] == 0
    assert sent_exports == [body["id"]]
    # The same request while it is queued: the same export, not queued twice.
    assert (
        client.post(f"/api/renders/{render_id}/exports", json={"format": "mp4", "fps": 10}).json()["id"]
        == body["id"]
    )
    assert sent_exports == [body["id"]]

    assert run_export(body["id"])["exported"] is True
    done = client.get(f"/api/exports/{body['id']}").json()
    assert (
        done["status"] == "done"
        and done["progress"] == 1.0
        and done["url"] == f"/api/exports/{body['id']}/file"
    )

    download = client.get(done["url"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "video/mp4"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith(f'attachment; filename="City-forest-r{render_id}.mp4"')
    assert "filename*=UTF-8''City%20%E2%86%92%20forest" in disposition
    with av.open(io.BytesIO(download.content)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        assert (count, stream.average_rate, stream.codec_context.width) == (6, 10, 64)

    # Done and cached: 200 with the url at once, nothing queued.
    cached = client.post(f"/api/renders/{render_id}/exports", json={"format": "mp4", "fps": 10})
    assert cached.status_code == 200 and cached.json()["url"] == done["url"]
    assert sent_exports == [body["id"]]
    listed = client.get(f"/api/renders/{render_id}/exports").json()
    assert [e["id"] for e in listed] == [body["id"]]

    # Other formats: their own content types and names.
    for export_format, media_type, name in [
        ("gif", "image/gif", f"City-forest-r{render_id}.gif"),
        ("zip", "application/zip", f"City-forest-r{render_id}-frames.zip"),
        ("contact_sheet", "image/png", f"City-forest-r{render_id}-contact-sheet.png"),
    ]:
        response = client.post(f"/api/renders/{render_id}/exports", json={"format": export_format})
        export_id = response.json()["id"]
        run_export(export_id)
        file = client.get(f"/api/exports/{export_id}/file")
        assert file.headers["content-type"] == media_type
        assert f'filename="{name}"' in file.headers["content-disposition"]
        if export_format == "gif":
            with Image.open(io.BytesIO(file.content)) as image:
                assert image.n_frames == 6
        if export_format == "zip":  # the render's metrics travel with its frames
            with zipfile.ZipFile(io.BytesIO(file.content)) as archive:
                metrics = json.loads(archive.read("metrics.json"))
            assert metrics == client.get(f"/api/renders/{render_id}/scores").json()


def test_a_lost_file_is_exported_again_under_the_same_id(client: TestClient, sent_exports: list[int]) -> None:
    from infra.config import get_settings
    from worker.exports import run_export

    transition = create(client)
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
    finish_by_hand(render_id)
    export_id = client.post(f"/api/renders/{render_id}/exports", json={"format": "webp"}).json()["id"]
    run_export(export_id)
    for file in (get_settings().frames_dir / "exports").glob("*.webp"):
        file.unlink()
    assert client.get(f"/api/exports/{export_id}/file").status_code == 404
    again = client.post(f"/api/renders/{render_id}/exports", json={"format": "webp"})
    assert again.status_code == 202 and again.json()["id"] == export_id
    assert sent_exports == [export_id, export_id]


def test_project_round_trip_keeps_the_timeline_the_bytes_and_the_frame_keys(client: TestClient) -> None:
    transition = create(
        client,
        title="City → forest",
        negative_prompt="blurry",
        guidance_scale=6.0,
        scheduler="ddim",
        text_interpolation="slerp",
        batch_size=2,
    )
    tid = transition["id"]
    assert (
        client.post(
            f"/api/transitions/{tid}/keyframes", json={"position": 0.4, "prompt": "a city garden"}
        ).status_code
        == 201
    )
    assert (
        client.post(
            f"/api/transitions/{tid}/keyframes", json={"position": 0.75, "prompt": "a dark wood"}
        ).status_code
        == 201
    )

    exported = client.get(f"/api/transitions/{tid}/project")
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/json"
    project = json.loads(exported.content)
    assert project["segue_project"] == 1 and project["model"] == "segue-tiny" and "model_revision" in project
    assert project["settings"]["scheduler"] == "ddim" and project["settings"]["seed"] == 7
    assert "data" not in exported.text and "/tmp" not in exported.text  # no server paths

    imported = client.post(
        "/api/projects", content=exported.content, headers={"content-type": "application/json"}
    )
    assert imported.status_code == 201, imported.text
    new = imported.json()
    assert new["id"] != tid and new["title"] == "City → forest" and new["warnings"] == []
    original = client.get(f"/api/transitions/{tid}").json()
    assert [(k["position"], k["prompt"]) for k in new["keyframes"]] == [
        (k["position"], k["prompt"]) for k in original["keyframes"]
    ]
    for name in (
        "negative_prompt",
        "seed",
        "steps",
        "guidance_scale",
        "width",
        "height",
        "scheduler",
        "frames",
    ):
        assert new[name] == original[name], name

    # Export -> import -> export: the same bytes.
    assert client.get(f"/api/transitions/{new['id']}/project").content == exported.content
    # And a download names the file after the title.
    download = client.get(f"/api/transitions/{tid}/project?download=true")
    assert download.headers["content-disposition"] == 'attachment; filename="City-forest.segue.json"'

    # Rendering the imported project gives the same frame keys, so its frames would be reused.
    first = client.post(f"/api/transitions/{tid}/renders").json()["id"]
    second = client.post(f"/api/transitions/{new['id']}/renders").json()["id"]
    assert frame_keys(first) == frame_keys(second) and len(frame_keys(first)) == 6
    # A render's own project file is what it used, and imports to the same frames too.
    of_render = client.get(f"/api/renders/{first}/project")
    assert json.loads(of_render.content)["keyframes"] == project["keyframes"]


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({"unknown": True}, "unknown", "not a known field"),
        ({"model": "nope/unknown"}, "model", "choose one of"),
        ({"settings_steps": 0}, "settings_steps", "not a known field"),
    ],
)
def test_bad_projects_are_refused_with_a_clear_422(
    client: TestClient, body: dict[str, Any], field: str, needle: str
) -> None:
    transition = create(client)
    project = json.loads(client.get(f"/api/transitions/{transition['id']}/project").content)
    response = client.post("/api/projects", json={**project, **body})
    assert response.status_code == 422, response.text
    assert needle in response.json()["errors"][field]
    assert len(client.get("/api/transitions").json()) == 1  # nothing half-imported


def test_oversized_or_malformed_projects_are_refused(client: TestClient) -> None:
    transition = create(client)
    project = json.loads(client.get(f"/api/transitions/{transition['id']}/project").content)
    huge = client.post("/api/projects", content=b" " * 40_100_000 + json.dumps(project).encode())
    assert huge.status_code == 422 and "at most 40000 kB" in huge.json()["errors"]["body"]
    many = {**project, "keyframes": [{"position": i / 300, "prompt": "p"} for i in range(301)]}
    response = client.post("/api/projects", json=many)
    assert response.status_code == 422 and "at most 200 keyframes" in response.json()["errors"]["keyframes"]
    broken = client.post("/api/projects", content=b"{not json")
    assert broken.status_code == 422 and "not a JSON document" in broken.json()["errors"]["body"]
    steps = client.post("/api/projects", json={**project, "settings": {**project["settings"], "steps": 0}})
    assert "between 1 and 150" in steps.json()["errors"]["settings.steps"]
    assert len(client.get("/api/transitions").json()) == 1


def test_the_browser_exports_from_the_render_panel_and_imports_an_upload(
    client: TestClient, sent_exports: list[int]
) -> None:
    from worker.exports import run_export

    transition = create(client)
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
    page = client.get(f"/transitions/{transition['id']}")
    # A render still running: the panel loads when its stream ends.
    assert f'hx-get="/renders/{render_id}/export-panel"' in page.text and 'hx-trigger="sse:end"' in page.text
    waiting = client.get(f"/renders/{render_id}/export-panel")
    assert "can be exported once it is done" in waiting.text and "<form" not in waiting.text

    finish_by_hand(render_id)
    page = client.get(f"/transitions/{transition['id']}")
    assert 'hx-trigger="load"' in page.text
    panel = client.get(f"/renders/{render_id}/export-panel").text
    assert f'hx-post="/renders/{render_id}/exports"' in panel and 'value="contact_sheet"' in panel
    assert f"/api/transitions/{transition['id']}/project?download=true" in panel

    bad = client.post(f"/renders/{render_id}/exports", data={"format": "gif", "fps": "0"}, headers=HX)
    assert bad.status_code == 422 and "fps must be between 1 and 60 (got 0)" in bad.text
    started = client.post(
        f"/renders/{render_id}/exports", data={"format": "gif", "fps": "8", "loop": "true"}, headers=HX
    )
    assert started.status_code == 200
    export_id = sent_exports[-1]
    assert f'hx-get="/exports/{export_id}/status"' in started.text and 'hx-trigger="every 1s"' in started.text
    run_export(export_id)
    finished = client.get(f"/exports/{export_id}/status").text
    assert f'href="/api/exports/{export_id}/file"' in finished and "every 1s" not in finished
    assert "Animated GIF · 8 fps · ping-pong" in finished

    # Import: an upload on the new-transition page opens the new transition.
    project = client.get(f"/api/transitions/{transition['id']}/project").content
    assert 'action="/projects/import"' in client.get("/transitions/new").text
    uploaded = client.post(
        "/projects/import",
        files={"project": ("x.segue.json", project, "application/json")},
        follow_redirects=False,
    )
    assert uploaded.status_code == 303
    new_id = int(uploaded.headers["location"].rsplit("/", 1)[1])
    assert client.get(f"/api/transitions/{new_id}/project").content == project
    refused = client.post(
        "/projects/import", files={"project": ("x.json", b'{"segue_project": 1, "x": 1}', "application/json")}
    )
    assert refused.status_code == 422
    assert "x is not a known field" in refused.text and "keyframes is required" in refused.text


# ---------------------------------------------------------------- a live worker


def test_a_worker_exports_a_render_and_an_imported_project_reuses_its_frames(stack_factory: Any) -> None:
    stack = stack_factory(mode="embedded", database="sqlite")
    client = stack.client
    transition = create(client, steps=2, batch_size=3)
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]

    def status(url: str) -> dict[str, Any]:
        return client.get(url).json()

    wait_for(lambda: status(f"/api/renders/{render_id}")["status"] == "done", what="the render")
    started = {
        fmt: client.post(f"/api/renders/{render_id}/exports", json={"format": fmt}).json()
        for fmt in ("mp4", "gif")
    }
    done = {
        fmt: wait_for(
            lambda e=e: (s := status(f"/api/exports/{e['id']}"))["status"] in ("done", "failed") and s,
            what=f"the {fmt} export",
        )
        for fmt, e in started.items()
    }
    assert all(d["status"] == "done" for d in done.values()), (done, stack.log.read_text()[-3000:])

    video = client.get(done["mp4"]["url"])
    assert video.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(video.content)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        assert (count, stream.average_rate) == (6, 12)
        assert (stream.codec_context.width, stream.codec_context.height) == (64, 64)
    with Image.open(io.BytesIO(client.get(done["gif"]["url"]).content)) as gif:
        assert gif.n_frames == 6

    # The project re-imports, and rendering it reuses every frame: same keys, nothing computed.
    project = client.get(f"/api/transitions/{transition['id']}/project").content
    imported = client.post("/api/projects", content=project).json()
    again = client.post(f"/api/transitions/{imported['id']}/renders").json()["id"]
    detail = wait_for(
        lambda: (d := status(f"/api/renders/{again}"))["status"] == "done" and d, what="the re-render"
    )
    assert detail["stats"]["frames_reused"] == 6 and detail["stats"]["frames_computed"] == 0


def test_export_files_can_be_seeked_and_go_with_their_transition(
    client: TestClient, sent_exports: list[int]
) -> None:
    from infra.config import get_settings
    from worker.exports import run_export

    transition = create(client)
    render_id = client.post(f"/api/transitions/{transition['id']}/renders").json()["id"]
    finish_by_hand(render_id)
    export_id = client.post(f"/api/renders/{render_id}/exports", json={"format": "mp4"}).json()["id"]
    assert run_export(export_id)["exported"] is True
    url = client.get(f"/api/exports/{export_id}").json()["url"]
    whole = client.get(url).content
    part = client.get(url, headers={"Range": "bytes=8-15"})
    assert part.status_code == 206 and part.content == whole[8:16]  # a browser seeks in the video
    files = list((get_settings().frames_dir / "exports").iterdir())
    assert len(files) == 1 and files[0].stat().st_size == len(whole)

    keys = frame_keys(render_id)
    assert client.delete(f"/api/transitions/{transition['id']}").status_code == 204
    assert list((get_settings().frames_dir / "exports").iterdir()) == []  # its export went with it
    assert client.get(url).status_code == 404
    from infra.storage import get_store

    assert all(get_store().exists(k) for k in keys)  # frames stay: other transitions may share them
