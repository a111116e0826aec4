"""Image endpoints in the engine on the tiny model: fitting, AdaIN slerp, DDIM inversion round trip and its
cache, morphs that end exactly on the pictures, with and without attention interpolation."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from core.params import PixelSettings
from engine.attention import MixingProcessor
from engine.morph import Inverter, Picture, adain_slerp, fit_image, image_hash, latents_png, png_latents
from engine.pipeline import Engine, FrameRequest

torch.set_num_threads(1)

STEPS = 10
PARAMS = PixelSettings(model="segue-tiny", seed=5, steps=STEPS, guidance_scale=1.0, width=64, height=64)


@pytest.fixture(scope="module")
def engine(tiny_model_dir) -> Engine:  # type: ignore[no-untyped-def]
    return Engine.load(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def pictures(engine: Engine) -> tuple[Picture, Picture]:
    """Two pictures the model made (DDIM, guidance 1): what inversion can give back exactly."""
    params = PARAMS.model_copy(update={"scheduler": "ddim"})
    requests = [FrameRequest(p, p, 0.0, seed_a=s, seed_b=s) for p, s in (("a cat", 1), ("a bicycle", 2))]
    cat, bicycle = engine.render(params, requests)
    return Picture(cat, "a cat"), Picture(bicycle, "a bicycle")


def mean_abs(a: PIL.Image.Image, b: PIL.Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


def test_fit_image_crops_the_centre_to_the_aspect_and_resizes() -> None:
    wide = PIL.Image.new("RGB", (300, 100), "red")
    wide.paste(PIL.Image.new("RGB", (100, 100), "blue"), (100, 0))
    fitted = fit_image(wide, 64, 64)
    assert fitted.size == (64, 64)
    assert np.asarray(fitted)[32, 32].tolist() == [0, 0, 255]  # the centre square, nothing of the sides
    assert fit_image(PIL.Image.new("L", (40, 80)), 64, 32).size == (64, 32)


def test_adain_slerp_keeps_the_ends_and_blends_the_channel_statistics() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float64) * 0.5 + 1.0
    b = torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float64) * 2.0 - 1.0
    assert torch.equal(adain_slerp(a, b, 0.0), a) and torch.equal(adain_slerp(a, b, 1.0), b)
    mid = adain_slerp(a, b, 0.25)
    dims = (2, 3)
    torch.testing.assert_close(mid.mean(dims), 0.75 * a.mean(dims) + 0.25 * b.mean(dims))
    torch.testing.assert_close(mid.std(dims), 0.75 * a.std(dims) + 0.25 * b.std(dims))


def test_inversion_reconstructs_the_picture_and_is_computed_once(engine: Engine, pictures) -> None:  # type: ignore[no-untyped-def]
    cat, _ = pictures
    inverter = engine.inverter
    calls = inverter.stats.unet_calls
    noise = inverter.invert(cat, 64, 64, STEPS)
    assert inverter.stats.unet_calls == calls + STEPS
    assert inverter.invert(Picture(cat.image.copy(), cat.prompt), 64, 64, STEPS) is noise  # cached by hash
    assert inverter.stats.unet_calls == calls + STEPS
    # Round trip on latents the model made from known noise: inversion finds the noise, sampling it gives
    # the latents back (the tiny model's random VAE is no autoencoder, so pictures are measured on
    # Segue-mini by bench/methods.py).
    cond = engine.encode([cat.prompt])[cat.prompt]
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    made = inverter.sample(z, cond, 50)
    found = inverter.invert_latents(made, cat.prompt, 50)
    assert torch.nn.functional.cosine_similarity(found.flatten(), z.flatten(), dim=0) > 0.99
    back = inverter.sample(found, cond, 50)
    assert float((back - made).norm() / made.norm()) < 0.03
    calls = inverter.stats.unet_calls - STEPS - 50
    other = inverter.invert(Picture(cat.image, "a dog"), 64, 64, STEPS)
    assert not torch.equal(other, noise) and inverter.stats.unet_calls == calls + 2 * STEPS + 50


def test_a_morph_ends_exactly_on_the_pictures(engine: Engine, pictures) -> None:  # type: ignore[no-untyped-def]
    cat, bicycle = pictures
    frames = engine.inverter.morph(cat, bicycle, [0.0, 0.5, 1.0], width=64, height=64, steps=STEPS)
    assert np.array_equal(np.asarray(frames[0]), np.asarray(fit_image(cat.image, 64, 64)))
    assert np.array_equal(np.asarray(frames[2]), np.asarray(fit_image(bicycle.image, 64, 64)))
    assert mean_abs(frames[1], frames[0]) > 0 and mean_abs(frames[1], frames[2]) > 0
    assert image_hash(frames[0]) == image_hash(fit_image(cat.image, 64, 64))


def test_a_morph_with_attention_interpolation_differs_and_restores_the_processors(
    engine: Engine, pictures
) -> None:  # type: ignore[no-untyped-def]
    cat, bicycle = pictures
    kwargs = {"width": 64, "height": 64, "steps": STEPS, "reconstruct": True}
    plain = engine.inverter.morph(cat, bicycle, [0.0, 0.5], **kwargs)
    fused = engine.inverter.morph(
        cat, bicycle, [0.0, 0.5], attention_mode="fused", attention_steps=1.0, **kwargs
    )
    assert mean_abs(plain[0], fused[0]) < 0.5  # t = 0 is the picture's own trajectory either way
    assert not np.array_equal(np.asarray(plain[1]), np.asarray(fused[1]))
    assert not any(isinstance(p, MixingProcessor) for p in engine.pipe.unet.attn_processors.values())


def test_an_inversion_kept_in_a_store_is_reused_by_another_inverter_exactly(engine: Engine, pictures) -> None:  # type: ignore[no-untyped-def]
    cat, _ = pictures
    kept: dict[str, bytes] = {}
    store = (kept.get, kept.__setitem__)
    first = Inverter(engine)
    first.keep_in(store, "rev-1")
    noise = first.invert(cat, 64, 64, STEPS)
    assert len(kept) == 1 and first.stats.unet_calls == STEPS
    (data,) = kept.values()
    assert data.startswith(b"\x89PNG") and torch.equal(png_latents(data, tuple(noise.shape)), noise.float())
    second = Inverter(engine)  # another worker: an empty cache, the same store
    second.keep_in(store, "rev-1")
    assert torch.equal(second.invert(cat, 64, 64, STEPS), noise) and second.stats.unet_calls == 0
    other_weights = Inverter(engine)  # another revision of the weights never reads it
    other_weights.keep_in(store, "rev-2")
    other_weights.invert(cat, 64, 64, STEPS)
    assert other_weights.stats.unet_calls == STEPS and len(kept) == 2
    assert png_latents(latents_png(noise), (1, 2, 3)) is None  # the wrong shape is no hit
