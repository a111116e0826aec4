"""Animatics through the API: fps and time forms, the soundtrack (upload, validation, beats, snapping,
undo), audio-driven spacing in a render's plan, and exports that carry the sound (read back with PyAV)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.support.clicks import click_samples, click_wav, encoded, stored_audio, wav_bytes
from tests.support.renders import finish_by_hand

CITY = "a futuristic cityscape"
FOREST = "a girl in a magical forest"


@pytest.fixture
def sent_exports(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr("services.exports.send_export", sent.append)
    return sent


def create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    body = {"start_prompt": CITY, "end_prompt": FOREST, "frames": 25, "seed": 7, "steps": 3, **overrides}
    response = client.post("/api/transitions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def upload(client: TestClient, transition_id: int, data: bytes, name: str = "clicks.wav") -> Any:
    return client.put(f"/api/transitions/{transition_id}/audio", files={"audio": (name, data, "audio/wav")})


def test_fps_is_a_setting_and_the_api_speaks_seconds(client: TestClient) -> None:
    body = create(client)
    assert body["fps"] == 12 and body["duration"] == pytest.approx(25 / 12, abs=1e-3)
    tid = body["id"]
    # 25 frames at 12 fps: frame i at i / 12 s, t = i / 24; "0:01.0" is frame 12, t = 0.5.
    added = client.post(f"/api/transitions/{tid}/keyframes", json={"time": "0:01.0", "prompt": "a garden"})
    assert added.status_code == 201, added.text
    assert added.json()["position"] == pytest.approx(0.5)
    moved = client.patch(f"/api/keyframes/{added.json()['id']}", json={"time": 1.5, "hold_seconds": 0.5})
    assert moved.status_code == 200, moved.text
    assert moved.json()["position"] == pytest.approx(0.75) and moved.json()["hold_frames"] == 6
    out = client.get(f"/api/transitions/{tid}").json()
    inner = out["keyframes"][1]
    assert inner["time"] == pytest.approx(1.5) and inner["hold_seconds"] == pytest.approx(0.5)
    assert out["duration"] == pytest.approx((25 + 6) / 12, abs=1e-3)  # holds play too

    bad = client.patch(f"/api/transitions/{tid}", json={"fps": 61})
    assert bad.status_code == 422 and bad.json()["errors"]["fps"] == "fps must be between 1 and 60 (got 61)"
    late = client.post(f"/api/transitions/{tid}/keyframes", json={"time": "0:09", "prompt": "too late"})
    assert (
        late.status_code == 422
        and "time must be strictly between 0:00.00 and" in late.json()["errors"]["time"]
    )
    garbage = client.post(f"/api/transitions/{tid}/keyframes", json={"time": "soon", "prompt": "x"})
    assert garbage.status_code == 422 and "time" in garbage.json()["errors"]
    neither = client.post(f"/api/transitions/{tid}/keyframes", json={"prompt": "x"})
    assert neither.status_code == 422 and "position is required" in neither.json()["errors"]["position"]


def test_a_soundtrack_is_uploaded_read_snapped_to_and_removed(client: TestClient) -> None:
    tid = create(client, frames=96)["id"]
    data, clicks = click_wav(8.0)
    response = upload(client, tid, data)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["duration"] == pytest.approx(8.0, abs=0.01) and body["sample_rate"] == 44100
    assert body["url"] == f"/api/transitions/{tid}/audio/file"
    # Beats within one frame (1/12 s) of a click, and most clicks found.
    assert all(min(abs(b - c) for c in clicks) <= 1 / 12 for b in body["beats"])
    assert len(body["beats"]) >= 0.8 * len(clicks)
    assert client.get(f"/api/transitions/{tid}/audio").json() == body
    file = client.get(body["url"])
    assert file.status_code == 200 and file.content == data and file.headers["content-type"] == "audio/wav"
    onsets = client.get(body["onsets_url"]).json()
    assert onsets["hop_seconds"] > 0 and len(onsets["strength"]) > 100 and onsets["onsets"]

    # Snap: a keyframe at t 0.33 (3.13 s) moves to the nearest beat; one edit, undone like any other.
    kid = client.post(
        f"/api/transitions/{tid}/keyframes", json={"position": 0.33, "prompt": "a garden"}
    ).json()["id"]
    snapped = client.post(f"/api/transitions/{tid}/snap-to-beats")
    assert snapped.status_code == 200, snapped.text
    keyframe = next(k for k in snapped.json()["keyframes"] if k["id"] == kid)
    assert min(abs(keyframe["time"] - b) for b in body["beats"]) < 1e-3
    assert keyframe["position"] != pytest.approx(0.33)
    assert client.post(f"/api/transitions/{tid}/undo").status_code == 200
    back = next(k for k in client.get(f"/api/transitions/{tid}").json()["keyframes"] if k["id"] == kid)
    assert back["position"] == pytest.approx(0.33)

    assert client.delete(f"/api/transitions/{tid}/audio").status_code == 204
    assert client.get(f"/api/transitions/{tid}/audio").status_code == 404
    assert client.post(f"/api/transitions/{tid}/undo").status_code == 200  # the soundtrack comes back
    assert client.get(f"/api/transitions/{tid}/audio").json()["duration"] == pytest.approx(8.0, abs=0.01)


def test_other_formats_decode(client: TestClient) -> None:
    tid = create(client)["id"]
    samples, _ = click_samples(3.0)
    for container, codec, name in [
        ("flac", "flac", "c.flac"),
        ("ogg", "libvorbis", "c.ogg"),
        ("mp3", "libmp3lame", "c.mp3"),
    ]:
        try:
            data = encoded(samples, container, codec)
        except (av.FFmpegError, ValueError):  # an encoder this PyAV build lacks
            continue
        response = upload(client, tid, data, name)
        assert response.status_code == 200, (name, response.text)
        assert response.json()["duration"] == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize(
    "case",
    ["not audio", "truncated", "cut header", "zero length", "silence only", "too large", "too long"],
)
def test_bad_uploads_are_a_422_naming_audio_and_store_nothing(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    tid = create(client)["id"]
    good, _ = click_wav(2.0)
    if case == "not audio":
        data = b"%PDF-1.4 this is not sound" * 100
    elif case == "truncated":
        data = good[: len(good) // 3]  # the header still declares 2 s
    elif case == "cut header":
        data = good[:30]
    elif case == "zero length":
        data = b""
    elif case == "silence only":
        data = wav_bytes(click_samples(0.0)[0])  # a valid header, no samples
    elif case == "too large":
        monkeypatch.setenv("SEGUE_MAX_AUDIO_MB", "0.1")
        from infra.config import get_settings

        get_settings.cache_clear()
        data = good  # 176 kB
    else:
        monkeypatch.setattr("services.audio.MAX_SECONDS", 1.0)
        data = good
    response = upload(client, tid, data)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert list(errors) == ["audio"] and errors["audio"].startswith("audio ")
    assert stored_audio() == []
    assert client.get(f"/api/transitions/{tid}/audio").status_code == 404
    assert client.get(f"/api/transitions/{tid}").json()["version"] == 1  # no edit recorded


# ---------------------------------------------------------------- exports carry the sound


def _read_back(data: bytes) -> tuple[int, float, float, np.ndarray, int]:
    """(video frames, video fps, audio seconds, mono samples, audio rate) of a video file."""
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        fps = float(video.average_rate)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        chunks = [f.to_ndarray().mean(axis=0) for f in container.decode(stream)]
    samples = np.concatenate(chunks)
    return frames, fps, samples.size / rate, samples, rate


@pytest.mark.parametrize("export_format", ["mp4", "webm"])
def test_videos_carry_the_soundtrack_in_sync_and_in_betweens_reach_24_fps(
    client: TestClient, sent_exports: list[int], export_format: str
) -> None:
    from worker.exports import run_export

    tid = create(client, frames=24, audio_offset=0.5)["id"]  # 2 s at 12 fps; the sound from 0.5 s in
    data, clicks = click_wav(4.0)
    assert upload(client, tid, data).status_code == 200
    render_id = client.post(f"/api/transitions/{tid}/renders").json()["id"]
    finish_by_hand(render_id)

    body = client.post(
        f"/api/renders/{render_id}/exports", json={"format": export_format, "fps": 24, "inbetweens": "flow"}
    ).json()
    assert run_export(body["id"])["exported"] is True, client.get(f"/api/exports/{body['id']}").json()
    file = client.get(f"/api/exports/{body['id']}/file").content
    frames, fps, seconds, samples, rate = _read_back(file)
    assert fps == 24 and frames == 48  # duration (2 s) x fps
    assert seconds == pytest.approx(2.0, abs=1 / 24)  # cut to the video's length
    # In sync: the first click heard is the first one after the offset, at its time minus the offset.
    first = int(np.argmax(np.abs(samples) > 0.1)) / rate
    expected = min(c for c in clicks if c >= 0.5) - 0.5
    assert first == pytest.approx(expected, abs=1 / 24)

    # Without in-betweens, at the render's 12 fps: the same length, 24 frames.
    body = client.post(f"/api/renders/{render_id}/exports", json={"format": export_format}).json()
    run_export(body["id"])
    frames, fps, seconds, _, _ = _read_back(client.get(f"/api/exports/{body['id']}/file").content)
    assert (frames, fps) == (24, 12) and seconds == pytest.approx(2.0, abs=1 / 12)


def test_the_zip_marks_in_betweens_and_gif_carries_no_sound(
    client: TestClient, sent_exports: list[int]
) -> None:
    from worker.exports import run_export

    tid = create(client, frames=6)["id"]
    assert upload(client, tid, click_wav(1.0)[0]).status_code == 200
    render_id = client.post(f"/api/transitions/{tid}/renders").json()["id"]
    finish_by_hand(render_id)
    body = client.post(
        f"/api/renders/{render_id}/exports", json={"format": "zip", "fps": 24, "inbetweens": "flow"}
    )
    export_id = body.json()["id"]
    run_export(export_id)
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/api/exports/{export_id}/file").content))
    meta = json.loads(archive.read("inbetweens.json"))
    assert meta["fps"] == 24 and meta["source_fps"] == 12 and len(meta["frames"]) == 12
    made = [f["made"] for f in meta["frames"]]
    # Every rendered frame, one in-between after each but the last (which shows its full 1/12 s).
    assert made[0::2] == ["rendered"] * 6 and made[-1] == "rendered"
    assert all(m in ("flow", "crossfade") for m in made[1:-1:2])
    # The test frames jump (a square moves 6 px, the colour changes): the metadata names the crossfades.
    assert meta["crossfades"] == [f["index"] for f in meta["frames"] if f["made"] == "crossfade"]
    names = [n for n in archive.namelist() if n.endswith(".png")]
    assert len(names) == 12 and sum("_flow" in n or "_crossfade" in n for n in names) == 5

    gif = client.post(f"/api/renders/{render_id}/exports", json={"format": "gif"}).json()
    run_export(gif["id"])
    with av.open(io.BytesIO(client.get(f"/api/exports/{gif['id']}/file").content)) as container:
        assert len(container.streams.audio) == 0
    panel = client.get(f"/renders/{render_id}/export-panel").text
    assert "GIF, WebP, the zip and the contact sheet carry no sound" in panel


def test_audio_spacing_places_a_renders_frames_on_the_hits(client: TestClient) -> None:
    tid = create(client, frames=48, spacing="audio")["id"]  # 4 s at 12 fps
    refused = client.post(f"/api/transitions/{tid}/renders")
    assert (
        refused.status_code == 422
        and 'spacing "audio" follows the soundtrack' in refused.json()["errors"]["spacing"]
    )
    data, clicks = click_wav(4.0)
    assert upload(client, tid, data).status_code == 200
    render = client.post(f"/api/transitions/{tid}/renders")
    assert render.status_code == 202, render.text
    frames = client.get(f"/api/renders/{render.json()['id']}").json()["frames"]
    ts = [f["t"] for f in frames]
    assert ts[0] == 0.0 and ts[-1] == 1.0 and all(b > a for a, b in zip(ts, ts[1:], strict=False))
    assert [f["time"] for f in frames[:3]] == pytest.approx([0.0, 1 / 12, 2 / 12], abs=1e-4)
    steps = np.diff(ts)
    largest = np.argsort(steps)[-len(clicks) :]
    assert sum(min(abs(i / 12 - c) for c in clicks) <= 1 / 12 for i in largest) >= 0.8 * len(largest)
    # smooth 1: uniform again
    client.patch(f"/api/transitions/{tid}", json={"smooth": 1})
    render = client.post(f"/api/transitions/{tid}/renders").json()
    ts = [f["t"] for f in client.get(f"/api/renders/{render['id']}").json()["frames"]]
    assert ts == pytest.approx([i / 47 for i in range(48)])


def test_segue_render_exports_a_24_fps_mp4_with_the_sound(tmp_path: Any, models_dir: Any) -> None:
    import hashlib

    from tests.support.headless import segue_render

    data, clicks = click_wav(2.5)
    (tmp_path / "voice.wav").write_bytes(data)
    key = hashlib.sha256(data).hexdigest() + ".wav"
    project = {
        "segue_project": 1,
        "title": "Animatic",
        "model": "segue-tiny",
        "settings": {"seed": 3, "frames": 24, "steps": 2, "width": 64, "height": 64, "spacing": "audio"},
        "keyframes": [{"position": 0, "prompt": "a city"}, {"position": 1, "prompt": "a forest"}],
        "audio": {"key": key, "name": "voice.wav", "duration": 2.5, "sample_rate": 44100},
    }
    (tmp_path / "a.segue.json").write_text(json.dumps(project))
    result = segue_render(
        tmp_path, models_dir, "a.segue.json", "--out", "a.mp4", "--fps", "24", "--inbetweens", "flow"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    frames, fps, seconds, samples, rate = _read_back((tmp_path / "a.mp4").read_bytes())
    assert (frames, fps) == (48, 24) and seconds == pytest.approx(2.0, abs=1 / 24)
    first = int(np.argmax(np.abs(samples) > 0.1)) / rate
    assert first == pytest.approx(clicks[0], abs=1 / 24)

    (tmp_path / "voice.wav").unlink()
    missing = segue_render(tmp_path, models_dir, "a.segue.json", "--out", "b.mp4")
    assert missing.returncode != 0 and "soundtrack 'voice.wav' was not found" in missing.stderr


def test_the_project_file_carries_the_soundtrack_and_an_import_attaches_it(client: TestClient) -> None:
    tid = create(client, fps=24, audio_offset=0.25, spacing="audio", smooth=0.3)["id"]
    data, _ = click_wav(2.0)
    record = upload(client, tid, data).json()
    first = client.get(f"/api/transitions/{tid}/project")
    project = first.json()
    assert project["settings"]["fps"] == 24 and project["settings"]["smooth"] == 0.3
    assert project["audio"]["duration"] == record["duration"] and project["audio"]["beats"] == record["beats"]
    assert project["audio"]["key"].endswith(".wav") and project["audio"]["name"] == "clicks.wav"

    imported = client.post("/api/projects", json=project)
    assert imported.status_code == 201, imported.text
    new_id = imported.json()["id"]
    assert client.get(f"/api/transitions/{new_id}/audio").json() == {
        **record,
        "onsets_url": f"/api/transitions/{new_id}/audio/onsets",
        "url": f"/api/transitions/{new_id}/audio/file",
    }
    assert client.get(f"/api/transitions/{new_id}/project").content == first.content  # same bytes again

    # A project whose soundtrack this server does not hold imports with a warning, silent.
    project["audio"]["key"] = "0" * 64 + ".wav"
    elsewhere = client.post("/api/projects", json=project)
    assert elsewhere.status_code == 201
    assert any(w["field"] == "audio" for w in elsewhere.json()["warnings"])
    assert client.get(f"/api/transitions/{elsewhere.json()['id']}/audio").status_code == 404
    # A hold in seconds past the hold's limit is refused naming the field.
    too_long = client.post(
        f"/api/transitions/{tid}/keyframes", json={"position": 0.5, "prompt": "x", "hold_seconds": 500}
    )
    assert (
        too_long.status_code == 422
        and "hold_seconds is 12000 frames" in too_long.json()["errors"]["hold_seconds"]
    )


def test_the_page_uploads_fits_snaps_and_removes_the_soundtrack(client: TestClient) -> None:
    hx = {"HX-Request": "true"}
    tid = create(client, frames=12)["id"]  # 1 s at 12 fps
    page = client.get(f"/transitions/{tid}").text
    assert "12 frames at 12 fps = 0:01.00" in page and 'id="audio-file"' in page

    bad = client.post(
        f"/transitions/{tid}/audio", files={"audio": ("x.wav", b"nope", "audio/wav")}, headers=hx
    )
    assert (
        bad.status_code == 422
        and "audio is not an audio file" in bad.text
        and 'class="waveform"' not in bad.text
    )
    good = client.post(
        f"/transitions/{tid}/audio",
        files={"audio": ("clicks.wav", click_wav(3.0)[0], "audio/wav")},
        headers=hx,
    )
    assert good.status_code == 200 and 'class="waveform"' in good.text and 'class="beat"' in good.text
    assert "is longer than the video" in good.text and "Fit frames to the sound (36)" in good.text

    fitted = client.post(f"/transitions/{tid}/audio/follow", headers=hx)
    assert fitted.status_code == 200 and "both 0:03.00 long" in fitted.text
    assert client.get(f"/api/transitions/{tid}").json()["frames"] == 36

    client.post(f"/api/transitions/{tid}/keyframes", json={"time": "0:01.1", "prompt": "a garden"})
    snapped = client.post(f"/transitions/{tid}/audio/snap", headers=hx)
    assert snapped.status_code == 200
    inner = client.get(f"/api/transitions/{tid}").json()["keyframes"][1]
    beats = client.get(f"/api/transitions/{tid}/audio").json()["beats"]
    assert min(abs(inner["time"] - b) for b in beats) < 1e-3

    removed = client.post(f"/transitions/{tid}/audio/remove", headers=hx)
    assert removed.status_code == 200 and 'class="waveform"' not in removed.text
    assert client.post(f"/transitions/{tid}/audio/snap", headers=hx).status_code == 422  # no beats now


def test_the_frame_panel_shows_the_frames_time(client: TestClient) -> None:
    tid = create(client, frames=24, fps=8)["id"]
    render_id = client.post(f"/api/transitions/{tid}/renders").json()["id"]
    panel = client.get(f"/frames/{render_id}/20").text
    assert 'data-frame-time="2.5000"' in panel and "0:02.50" in panel and "frame 20 at 8 fps" in panel
