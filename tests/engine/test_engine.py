"""The render engine on the tiny random model: determinism, batch invariance, caching, cancellation."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from core import registry
from core.params import RANGES, PixelSettings
from engine import pipeline, tiny_model
from engine.pipeline import (
    SCHEDULERS,
    Engine,
    FrameRequest,
    RenderCancelled,
    check_inputs,
    get_engine,
    latents_to_preview,
    resolve_model,
)
from tests.support.pixels import pixels

CAT, BICYCLE = "a cat", "a photo of a red bicycle"
# Guidance well above 1 so the random text encoder visibly moves the picture: the tests below can
# then tell one prompt's frame from another's.
PARAMS = PixelSettings(
    model="segue-tiny", negative_prompt="", seed=7, steps=4, guidance_scale=12.0, width=64, height=64
)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a - b).max())


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


@pytest.fixture(scope="module")
def engine(tiny_model_dir) -> Engine:
    # A local directory goes through the same from_pretrained call as a hub id.
    return Engine.load(str(tiny_model_dir), device="cpu")


def test_loads_on_cpu_in_float32(engine):
    assert engine.device == torch.device("cpu")
    assert engine.dtype == torch.float32
    assert engine.pipe.unet.dtype == torch.float32


def test_loading_does_not_warn_about_the_dtype_argument(tiny_model_dir):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Engine.load(str(tiny_model_dir), device="cpu")
    assert not [w for w in caught if "torch_dtype" in str(w.message)]


def test_same_seed_same_frames_other_seed_other_frames(engine):
    frames = [FrameRequest(CAT, BICYCLE, 0.5)]
    first, again = pixels(engine.render(PARAMS, frames)), pixels(engine.render(PARAMS, frames))
    other = pixels(engine.render(PARAMS.model_copy(update=dict(seed=8)), frames))
    assert first[0].shape == (64, 64, 3)
    assert max_diff(first[0], again[0]) <= 1
    assert mean_diff(first[0], other[0]) > 10


def test_a_frame_is_the_same_in_a_batch_of_three_and_alone(engine):
    frames = [FrameRequest(CAT, BICYCLE, t) for t in (0.0, 0.5, 1.0)]
    batched = pixels(engine.render(PARAMS, frames))
    alone = [pixels(engine.render(PARAMS, [frame]))[0] for frame in frames]
    for index, (in_batch, by_itself) in enumerate(zip(batched, alone, strict=True)):
        assert max_diff(in_batch, by_itself) <= 2, f"frame {index}"
        assert mean_diff(in_batch, by_itself) < 0.05, f"frame {index}"
    # The endpoints really differ, so the comparisons above would catch frames out of order.
    assert mean_diff(batched[0], batched[2]) > 0.5


@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_endpoints_render_their_prompt_alone(engine, method):
    params = PARAMS.model_copy(update=dict(text_interpolation=method))
    start, end, cat, bicycle = pixels(
        engine.render(
            params,
            [
                FrameRequest(CAT, BICYCLE, 0.0),
                FrameRequest(CAT, BICYCLE, 1.0),
                FrameRequest(CAT, CAT, 0.5),
                FrameRequest(BICYCLE, BICYCLE, 0.5),
            ],
        )
    )
    assert max_diff(start, cat) <= 1
    assert max_diff(end, bicycle) <= 1
    assert max_diff(start, bicycle) > 3


def test_each_prompt_is_encoded_once(engine, monkeypatch):
    fresh = Engine(engine.pipe, model_name=engine.model_name, device=engine.device, dtype=engine.dtype)
    calls: list[int] = []
    hook = fresh.pipe.text_encoder.register_forward_hook(lambda module, args, output: calls.append(1))
    try:
        frames = [FrameRequest(CAT, BICYCLE, t) for t in (0.25, 0.75)] + [FrameRequest(BICYCLE, CAT, 0.5)]
        fresh.render(PARAMS.model_copy(update=dict(steps=1)), frames)
        assert len(calls) == 3  # "a cat", the bicycle, and "" for the negative prompt
        fresh.render(PARAMS.model_copy(update=dict(steps=1)), frames[:1])
        assert len(fresh.encode([CAT, CAT, BICYCLE])) == 2
        assert len(calls) == 3

        # The cache is bounded: the least recently used prompt is dropped first.
        monkeypatch.setattr(pipeline, "ENCODE_CACHE_SIZE", 3)
        fresh.encode(["a dog"])  # evicts "" (least recent), keeps the cat and the bicycle
        fresh.encode([CAT, BICYCLE])
        assert len(calls) == 4
        fresh.encode([""])
        assert len(calls) == 5
    finally:
        hook.remove()


def test_encode_returns_one_embedding_per_prompt(engine):
    embeddings = engine.encode([CAT, BICYCLE, CAT])
    assert list(embeddings) == [CAT, BICYCLE]
    hidden = engine.pipe.text_encoder.config.hidden_size
    assert embeddings[CAT].shape == (1, 77, hidden)
    assert not torch.equal(embeddings[CAT], embeddings[BICYCLE])


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_every_scheduler_renders_and_reports_each_step(engine, scheduler):
    params = PARAMS.model_copy(update=dict(scheduler=scheduler, steps=5, width=96, height=64))
    steps: list[tuple[int, int, tuple[int, ...]]] = []
    images = engine.render(
        params,
        [FrameRequest(CAT, BICYCLE, 0.3), FrameRequest(CAT, BICYCLE, 0.6)],
        on_step=lambda index, total, latents: steps.append((index, total, tuple(latents.shape))),
    )
    assert [image.size for image in images] == [(96, 64), (96, 64)]
    assert all(image.mode == "RGB" for image in images)
    assert steps == [(index, 5, (2, 4, 8, 12)) for index in range(5)]
    # Each call has its own scheduler: the shared pipeline keeps the one it was loaded with.
    assert type(engine.pipe.scheduler) is DPMSolverMultistepScheduler


def test_should_cancel_stops_between_steps(engine):
    seen: list[int] = []
    with pytest.raises(RenderCancelled):
        engine.render(
            PARAMS.model_copy(update=dict(steps=6)),
            [FrameRequest(CAT, BICYCLE, 0.5)],
            on_step=lambda index, total, latents: seen.append(index),
            should_cancel=lambda: len(seen) >= 2,
        )
    assert seen == [0, 1]


def test_should_cancel_before_the_first_step(engine):
    seen: list[int] = []
    with pytest.raises(RenderCancelled):
        engine.render(
            PARAMS,
            [FrameRequest(CAT, BICYCLE, 0.5)],
            on_step=lambda index, total, latents: seen.append(index),
            should_cancel=lambda: True,
        )
    assert seen == []


FRAME = FrameRequest(CAT, BICYCLE, 0.5)


def _above(field: str) -> int:
    """The first value above a setting's allowed range (core.params.RANGES: the engine checks the same)."""
    return int(RANGES[field].high()) + 1


def _outside(field: str, value: float) -> str:
    """What check_inputs says of `value`: the range core.params.RANGES allows, named in full."""
    return re.escape(RANGES[field].message(field, value))


@pytest.mark.parametrize(
    ("changes", "frames", "message"),
    [
        ({"steps": 0}, [FRAME], _outside("steps", 0)),
        ({"steps": _above("steps")}, [FRAME], _outside("steps", _above("steps"))),
        ({"guidance_scale": float("nan")}, [FRAME], r"guidance_scale must be a finite number between 0 and"),
        (
            {"guidance_scale": _above("guidance_scale")},
            [FRAME],
            _outside("guidance_scale", _above("guidance_scale")),
        ),
        ({"width": 100}, [FRAME], _outside("width", 100)),
        ({"height": 8}, [FRAME], _outside("height", 8)),
        ({"seed": -1}, [FRAME], _outside("seed", -1)),
        ({"seed": _above("seed")}, [FRAME], _outside("seed", _above("seed"))),
        (
            {"scheduler": "pndm"},
            [FRAME],
            "scheduler: input should be 'dpmsolver', 'ddim', 'euler', 'euler_a' or 'lcm'",
        ),
        ({"text_interpolation": "cubic"}, [FRAME], "text_interpolation: input should be 'lerp' or 'slerp'"),
        ({}, [], "frames must hold at least one FrameRequest"),
        ({}, [FRAME, FrameRequest(CAT, BICYCLE, 1.5)], r"frames\[1\].local_t must be a number in \[0, 1\]"),
    ],
)
def test_check_inputs_names_the_argument_and_range(changes, frames, message):
    with pytest.raises(ValueError, match=message):
        check_inputs(PARAMS.model_copy(update=changes), frames)


def test_render_checks_inputs_before_any_model_work(engine):
    with pytest.raises(ValueError, match="steps must be"):
        engine.render(PARAMS.model_copy(update={"steps": 0}), [FRAME], should_cancel=pytest.fail)


def test_latent_preview_uses_the_sd_projection():
    latents = torch.zeros(2, 4, 8, 12)
    latents[1, 0] = 1.0  # channel 0 alone: R, G, B = 0.3512, 0.2297, 0.3227 in [-1, 1]
    gray, tinted = latents_to_preview(latents, size=48)
    assert gray.size == tinted.size == (48, 32)
    assert gray.getpixel((10, 10)) == (128, 128, 128)
    assert tinted.getpixel((10, 10)) == (172, 157, 169)
    with pytest.raises(ValueError, match="latents must have shape"):
        latents_to_preview(torch.zeros(1, 3, 8, 8))


def test_get_engine_loads_once_per_model(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(pipeline, "_engines", {})
    engines: list[Engine] = []
    threads = [
        threading.Thread(target=lambda: engines.append(get_engine(str(tiny_model_dir), device="cpu")))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(engines) == 3 and all(e is engines[0] for e in engines)


def test_resolve_model_builds_the_tiny_model_once(tmp_path, monkeypatch):
    built: list[Path] = []
    real_build = tiny_model.build_tiny_model
    monkeypatch.setattr(
        tiny_model, "build_tiny_model", lambda out, seed: built.append(out) or real_build(out, seed)
    )
    path = Path(resolve_model("segue-tiny", tmp_path))
    assert path == tmp_path / "segue-tiny" and (path / "model_index.json").is_file()
    assert resolve_model("segue-tiny", tmp_path) == str(path)
    assert len(built) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["segue-tiny"]  # no temp dir left behind


def test_resolve_model_passes_other_names_through(tmp_path, monkeypatch):
    assert resolve_model("runwayml/stable-diffusion-v1-5", tmp_path) == "runwayml/stable-diffusion-v1-5"
    assert resolve_model(str(tmp_path), tmp_path) == str(tmp_path)
    monkeypatch.setattr(registry, "SHIPPED_MODELS_DIR", tmp_path / "shipped")
    with pytest.raises(FileNotFoundError, match="model 'segue-mini' is not in"):
        resolve_model("segue-mini", tmp_path)
    (tmp_path / "shipped" / "segue-mini").mkdir(parents=True)
    (tmp_path / "shipped" / "segue-mini" / "model_index.json").write_text("{}")
    assert resolve_model("segue-mini", tmp_path) == str(tmp_path / "shipped" / "segue-mini")
