"""Attention interpolation (AID) on the tiny model: the checks of issue 19 §1.

t = 0 and t = 1 reproduce the keyframes' frames; fused with the frame's own keys and values equal to its
keyframes' is plain attention; inner and outer at t are symmetric under a <-> b, t -> 1 - t; the
original processors are back after a render (a plain render after is bit-identical to one before).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.params import PixelSettings
from engine import attention
from engine.attention import mix_attention
from engine.pipeline import Engine, FrameRequest, check_inputs

torch.set_num_threads(1)

CAT, BICYCLE = "a cat", "a photo of a red bicycle"
PARAMS = PixelSettings(
    model="segue-tiny", seed=7, steps=6, guidance_scale=7.5, width=64, height=64, attention_steps=0.5
)
MODES = ("inner", "outer", "fused")
#: Float noise of one frame's final latents computed in two differently shaped batches. The latents are
#: compared, not the pixels: the tiny model's random VAE flattens most differences into one 8-bit level.
#: The latents reach about 25 in magnitude; summed in another order (another batch shape, on a CPU with
#: other vector units), six steps of fp32 differ by about 1e-4: up to 1.02e-4 on an AVX2-only machine,
#: under 1e-4 where AVX-512 was there. The smallest real change below (fused mixing on this tiny model) is
#: 2.6e-3, nine times this bound.
FLOAT_NOISE = 3e-4


def latents_of(engine: Engine, params: PixelSettings, frames: list[FrameRequest], **kw) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    """Each frame's latents after the last step (what the VAE decodes)."""
    final: dict[str, torch.Tensor] = {}

    def keep(step: int, total: int, latents: torch.Tensor) -> None:
        final["latents"] = latents.clone()

    engine.render(params, frames, on_step=keep, **kw)
    return list(final["latents"])


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.fixture(scope="module")
def engine(tiny_model_dir) -> Engine:  # type: ignore[no-untyped-def]
    return Engine.load(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def keyframes(engine: Engine) -> tuple[torch.Tensor, torch.Tensor]:
    cat, bicycle = latents_of(
        engine, PARAMS, [FrameRequest(CAT, CAT, 0.0), FrameRequest(BICYCLE, BICYCLE, 0.0)]
    )
    assert max_diff(cat, bicycle) > 1.0
    return cat, bicycle


# ---------------------------------------------------------------- the formulas alone


def _qkv(seed: int, batch: int = 2, tokens: int = 5) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, 2, tokens, 4, generator=g, dtype=torch.float64) for _ in range(3))


def test_fused_with_own_keys_equal_to_the_keyframes_is_plain_attention() -> None:
    q, k, v = _qkv(0)
    t = torch.tensor([0.3, 0.8], dtype=torch.float64).view(-1, 1, 1, 1)
    fused = mix_attention("fused", q, k, v, ((k, v), (k, v)), t)
    torch.testing.assert_close(fused, F.scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("mode", ["inner", "outer"])
def test_inner_and_outer_are_symmetric_in_the_keyframes(mode: str) -> None:
    q, k, v = _qkv(1)
    _, ka, va = _qkv(2)
    _, kb, vb = _qkv(3)
    t = torch.tensor([0.25, 0.6], dtype=torch.float64).view(-1, 1, 1, 1)
    forward = mix_attention(mode, q, k, v, ((ka, va), (kb, vb)), t)
    backward = mix_attention(mode, q, k, v, ((kb, vb), (ka, va)), 1 - t)
    torch.testing.assert_close(forward, backward)
    at_a = mix_attention(mode, q, k, v, ((ka, va), (kb, vb)), torch.zeros_like(t))
    torch.testing.assert_close(at_a, F.scaled_dot_product_attention(q, ka, va))


def test_an_unknown_mode_is_refused() -> None:
    q, k, v = _qkv(4)
    with pytest.raises(ValueError, match="attention mode must be one of inner, outer, fused"):
        mix_attention("sideways", q, k, v, ((k, v), (k, v)), torch.zeros(2, 1, 1, 1, dtype=torch.float64))


# ---------------------------------------------------------------- on the tiny model


@pytest.mark.parametrize("mode", MODES)
def test_t0_and_t1_reproduce_the_keyframes(engine: Engine, keyframes, mode: str) -> None:  # type: ignore[no-untyped-def]
    cat, bicycle = keyframes
    start, end = latents_of(
        engine,
        PARAMS,
        [FrameRequest(CAT, BICYCLE, 0.0, attention=mode), FrameRequest(CAT, BICYCLE, 1.0, attention=mode)],
    )
    assert max_diff(start, cat) <= FLOAT_NOISE
    assert max_diff(end, bicycle) <= FLOAT_NOISE


@pytest.mark.parametrize("mode", MODES)
def test_own_keys_equal_to_the_keyframes_give_the_plain_frame(engine: Engine, keyframes, mode: str) -> None:  # type: ignore[no-untyped-def]
    cat, _ = keyframes
    (mixed,) = latents_of(engine, PARAMS, [FrameRequest(CAT, CAT, 0.5, attention=mode)])
    assert max_diff(mixed, cat) <= FLOAT_NOISE


@pytest.mark.parametrize("mode", MODES)
def test_swapping_the_keyframes_and_t_gives_the_same_frame(engine: Engine, mode: str) -> None:
    forward, backward = latents_of(
        engine,
        PARAMS,
        [FrameRequest(CAT, BICYCLE, 0.3, attention=mode), FrameRequest(BICYCLE, CAT, 0.7, attention=mode)],
    )
    assert max_diff(forward, backward) <= FLOAT_NOISE


def test_attention_interpolation_changes_the_in_betweens(engine: Engine) -> None:
    """The checks above would pass if mixing did nothing: it must change an in-between."""
    frames = [FrameRequest(CAT, BICYCLE, 0.5), *(FrameRequest(CAT, BICYCLE, 0.5, attention=m) for m in MODES)]
    plain, *mixed = latents_of(engine, PARAMS, frames)
    for one in mixed:
        assert max_diff(one, plain) > 5 * FLOAT_NOISE
    assert max_diff(mixed[0], mixed[1]) > 5 * FLOAT_NOISE  # inner and outer differ


def test_a_mixing_frame_is_the_same_alone_and_in_a_batch(engine: Engine, keyframes) -> None:  # type: ignore[no-untyped-def]
    """Alone its keyframes run as helpers for the mixed steps; in a batch with them they are frames."""
    cat, bicycle = keyframes
    mid = FrameRequest(CAT, BICYCLE, 0.4, attention="fused")
    (alone,) = latents_of(engine, PARAMS, [mid])
    assert engine.last_stats.unet_items < 2 * 3 * PARAMS.steps  # the helpers stop after the mixed steps
    batch = latents_of(
        engine, PARAMS, [FrameRequest(CAT, CAT, 0.0), mid, FrameRequest(BICYCLE, BICYCLE, 0.0)]
    )
    assert max_diff(alone, batch[1]) <= FLOAT_NOISE
    assert max_diff(batch[0], cat) <= FLOAT_NOISE and max_diff(batch[2], bicycle) <= FLOAT_NOISE


def test_no_mixed_steps_is_plain(engine: Engine) -> None:
    params = PARAMS.model_copy(update={"attention_steps": 0.0})
    plain, mixed = latents_of(
        engine, params, [FrameRequest(CAT, BICYCLE, 0.5), FrameRequest(CAT, BICYCLE, 0.5, attention="inner")]
    )
    assert max_diff(plain, mixed) == 0


def test_processors_are_restored_after_a_render(engine: Engine) -> None:
    unet = engine.pipe.unet
    before_processors = {name: type(p) for name, p in unet.attn_processors.items()}
    frames = [FrameRequest(CAT, BICYCLE, 0.5), FrameRequest(CAT, BICYCLE, 0.25)]
    before = latents_of(engine, PARAMS, frames)
    before_images = [np.asarray(i) for i in engine.render(PARAMS, frames)]
    engine.render(PARAMS, [FrameRequest(CAT, BICYCLE, 0.5, attention="outer")])
    assert {name: type(p) for name, p in unet.attn_processors.items()} == before_processors
    after = latents_of(engine, PARAMS, frames)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    after_images = [np.asarray(i) for i in engine.render(PARAMS, frames)]
    assert all(np.array_equal(a, b) for a, b in zip(before_images, after_images, strict=True))


def test_processors_are_restored_when_a_render_fails(engine: Engine) -> None:
    unet = engine.pipe.unet
    before_processors = {name: type(p) for name, p in unet.attn_processors.items()}

    def boom(step: int, total: int, latents: torch.Tensor) -> None:
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        engine.render(PARAMS, [FrameRequest(CAT, BICYCLE, 0.5, attention="inner")], on_step=boom)
    assert {name: type(p) for name, p in unet.attn_processors.items()} == before_processors
    assert not any(isinstance(p, attention.MixingProcessor) for p in unet.attn_processors.values())


def test_check_inputs_names_a_bad_mode_and_bad_ends() -> None:
    with pytest.raises(ValueError, match=r"frames\[0\]\.attention must be one of none, inner, outer, fused"):
        check_inputs(PARAMS, [FrameRequest(CAT, BICYCLE, 0.5, attention="sideways")])
    end = FrameRequest(CAT, CAT, 0.0, attention="inner")
    with pytest.raises(ValueError, match=r"frames\[0\]\.ends: a keyframe's frame is rendered plainly"):
        check_inputs(PARAMS, [FrameRequest(CAT, BICYCLE, 0.5, attention="inner", ends=(end, end))])
    with pytest.raises(ValueError, match="attention_steps must be a finite number between 0 and 1"):
        check_inputs(PARAMS.model_copy(update={"attention_steps": 1.5}), [FrameRequest(CAT, CAT, 0.0)])


def test_a_plain_render_on_another_thread_during_an_attention_render_stays_plain(engine: Engine) -> None:
    """The processors are shared by the U-Net, the mix is per thread: a plain render that runs while an
    attention render holds the processors installed computes exactly what it computes alone."""
    import threading

    plain = [FrameRequest(CAT, BICYCLE, 0.5), FrameRequest(CAT, BICYCLE, 0.25)]
    alone = latents_of(engine, PARAMS, plain)
    during: list[torch.Tensor] = []
    installed: list[bool] = []

    def in_the_middle(step: int, total: int, latents: torch.Tensor) -> None:
        if step != 1:
            return
        unet = engine.pipe.unet
        installed.append(all(isinstance(p, attention.MixingProcessor) for p in unet.attn_processors.values()))
        worker = threading.Thread(target=lambda: during.extend(latents_of(engine, PARAMS, plain)))
        worker.start()
        worker.join()

    engine.render(PARAMS, [FrameRequest(CAT, BICYCLE, 0.5, attention="inner")], on_step=in_the_middle)
    assert installed == [True]
    assert all(torch.equal(a, b) for a, b in zip(alone, during, strict=True)) and len(during) == 2
