"""Stable Diffusion 1.5 at full size before a GPU: SD 1.5's architecture with random weights, at 512 x 512.

The model is built once per test session from the published configuration values (engine/random_sd.py) and
loaded through Segue's normal loader as a local diffusers directory, like a real SD 1.5 download. Pictures are
noise; shapes, memory and every code path are those of the real model.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from tests.support.forking import run
from tests.support.sse import read_sse
from tests.support.stack import REPO
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis]

CUBE = "a red cube on a blue table"
SPHERE = "a green sphere in the snow"


@pytest.fixture(scope="module")
def sd15_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.random_sd import build_random_sd15

    return build_random_sd15(tmp_path_factory.mktemp("sd15") / "sd15-random", seed=0)


def test_the_random_model_has_sd15s_exact_architecture(sd15_dir: Path) -> None:
    unet = json.loads((sd15_dir / "unet" / "config.json").read_text())
    vae = json.loads((sd15_dir / "vae" / "config.json").read_text())
    text = json.loads((sd15_dir / "text_encoder" / "config.json").read_text())
    assert unet["block_out_channels"] == [320, 640, 1280, 1280] and unet["cross_attention_dim"] == 768
    assert unet["layers_per_block"] == 2 and unet["attention_head_dim"] == 8
    assert vae["block_out_channels"] == [128, 256, 512, 512] and vae["scaling_factor"] == 0.18215
    assert (text["hidden_size"], text["num_hidden_layers"], text["num_attention_heads"]) == (768, 12, 12)
    assert json.loads((sd15_dir / "scheduler" / "scheduler_config.json").read_text())["_class_name"] == (
        "PNDMScheduler"
    )
    weights = sum(f.stat().st_size for f in sd15_dir.rglob("*.safetensors"))
    # fp16: U-Net 859.5 M + text encoder 123.1 M + VAE 83.7 M parameters = 2.13 GB.
    assert 2.0e9 < weights < 2.3e9


# One U-Net evaluation at 512 x 512 takes about 15 s on one CPU thread, a VAE decode 31 s: this test costs
# about 4 minutes on a quiet machine (10 on one shared with four other test runs).
@pytest.mark.timeout(1800)
def test_a_512_render_through_a_real_worker_with_previews_scores_moce_paths_and_an_mp4(
    stack_factory: Any, sd15_dir: Path, tmp_path: Path
) -> None:
    """Guidance 7.5 on 2 steps, Euler ancestral, DeepCache (step 1 on the shallow path of SD's U-Net), a seed
    per keyframe (noise path), MoCE on the start keyframe (step 0 on its first concept, step 1 on the whole
    prompt), every scorer, then an MP4 from the worker."""
    stack = stack_factory(mode="distributed", database="sqlite", model=str(sd15_dir))
    client = stack.client
    body = {
        "start_prompt": CUBE,
        "end_prompt": SPHERE,
        "frames": 2,
        "seed": 5,
        "steps": 2,
        "guidance_scale": 7.5,
        "scheduler": "euler_a",
        "deep_cache_interval": 2,
        "batch_size": 2,
        "noise_interpolation": "slerp",
    }
    created = client.post("/api/transitions", json=body)
    assert created.status_code == 201, created.text
    transition = created.json()
    assert (transition["width"], transition["height"], transition["model"]) == (512, 512, str(sd15_dir))
    start, end = transition["keyframes"][0], transition["keyframes"][-1]
    concepts = {"first": "a red cube", "second": "a blue table", "switch_step": 1}
    patched = client.patch(f"/api/keyframes/{start['id']}", json={"seed": 11, "concepts": concepts})
    assert patched.status_code == 200, patched.text
    assert client.patch(f"/api/keyframes/{end['id']}", json={"seed": 12}).status_code == 200

    started = client.post(f"/api/transitions/{transition['id']}/renders")
    assert started.status_code == 202, started.text
    render_id = started.json()["id"]
    events = read_sse(client, f"/api/renders/{render_id}/events")
    names = [e["event"] for e in events]
    assert names[-1] == "done", stack.log.read_text()[-3000:]
    assert names.count("frame") == 2
    previews = [json.loads(e["data"]) for e in events if e["event"] == "preview"]
    assert previews and previews[-1]["step"] == previews[-1]["steps"] == 2
    with Image.open(io.BytesIO(_data_uri_bytes(previews[-1]["images"][0]))) as preview:
        assert max(preview.size) == 64  # a cheap latent projection, not a 512 x 512 decode

    detail = client.get(f"/api/renders/{render_id}").json()
    pictures = []
    for frame in detail["frames"]:
        response = client.get(frame["url"])
        assert response.status_code == 200
        with Image.open(io.BytesIO(response.content)) as image:
            assert image.size == (512, 512)
            pictures.append(np.asarray(image.convert("RGB"), dtype=np.float32))
    # Two seeds, two prompts: two different pictures, neither flat (random weights still draw structure).
    assert np.abs(pictures[0] - pictures[1]).mean() > 1.0
    assert all(p.std() > 1.0 for p in pictures)

    # Every scorer: the U-Net scorer at full size and SSIM; CLIP's image model is not on this machine,
    # which the worker says once, clearly, and the render goes on without it.
    scores = client.get(f"/api/renders/{render_id}/scores").json()
    assert set(scores["scorers"]) == {"unet", "ssim"}
    assert len(client.get(f"/api/renders/{render_id}/scores?scorer=unet").json()["frames"]) == 2
    log = stack.log.read_text()
    assert log.count("scorer clip unavailable") == 1, log[-3000:]

    # The MP4: the worker's export task, run here (it holds the export's lease: whichever of this process
    # and the worker claims it first encodes it, once).
    from worker.exports import run_export

    export = client.post(f"/api/renders/{render_id}/exports", json={"format": "mp4", "fps": 8})
    assert export.status_code == 202, export.text
    export_id = export.json()["id"]
    run_export(export_id)
    wait_for(
        lambda: client.get(f"/api/exports/{export_id}").json()["status"] == "done",
        timeout=120,
        what="the MP4 export",
    )
    video = client.get(f"/api/exports/{export_id}/file")
    assert video.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(video.content)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 512, 512)
        assert sum(1 for _ in container.decode(stream)) >= 2


def _data_uri_bytes(uri: str) -> bytes:
    import base64

    return base64.b64decode(uri.split(",", 1)[1])


def test_bench_gpu_dry_runs_the_whole_script_on_the_cpu(sd15_dir: Path, tmp_path: Path) -> None:
    """`bench/gpu.py --dry`: every row of the GPU table, on the CPU, with the random SD 1.5 (small size)."""
    out = tmp_path / "gpu.md"
    args = ["--dry", "--model", str(sd15_dir), "--size", "64", "--batches", "1", "--steps", "1"]
    args += ["--lcm-steps", "2", "--out", str(out)]
    result = run("bench.gpu", args, dict(os.environ), REPO, timeout=900)  # forked: torch is imported already
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    table = out.read_text()
    assert "| fp32 + SDPA (CPU, dry) |" in table
    for row in ("channels-last", "torch.compile", "tiny preview decoder", "VAE slicing + tiling", "lcm"):
        assert row in table, table
    assert "model share" in table and "peak memory" in table
    assert "Traceback" not in result.stderr
