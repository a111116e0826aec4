"""Few-step schedulers, skipped guidance, fewer U-Net evaluations, devices and LoRAs, on the tiny model."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.params import SAVINGS_OFF, PixelSettings
from core.registry import model_revision
from engine.pipeline import (
    DeviceUnavailable,
    Engine,
    FrameRequest,
    dtype_for,
    get_engine,
    resolve_device,
    uses_sdpa,
)
from tests.support.pixels import pixels, psnr

CAT, BICYCLE = "a cat", "a bicycle"
PARAMS = PixelSettings(model="segue-tiny", seed=7, steps=8, width=64, height=64, guidance_scale=7.5)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    return Engine.load(str(tiny_model_dir), device="cpu")


FRAMES = [FrameRequest(CAT, BICYCLE, t) for t in (0.0, 0.5, 1.0)]


def test_guidance_at_most_one_skips_the_unconditional_half(engine: Engine) -> None:
    engine.render(PARAMS.model_copy(update={"guidance_scale": 1.0}), FRAMES)
    assert engine.last_stats.unet_items == 3 * PARAMS.steps  # one item per frame and step
    engine.render(PARAMS, FRAMES)
    # Guided: conditional + unconditional (the first step's unconditional once for the shared noise).
    assert engine.last_stats.unet_items == 3 * PARAMS.steps * 2 - 2


@pytest.mark.parametrize("scheduler", ["lcm", "euler_a"])
def test_stochastic_schedulers_give_a_frame_the_same_pixels_alone_or_in_any_batch(
    engine: Engine, scheduler: str
) -> None:
    params = PARAMS.model_copy(update={"scheduler": scheduler, "steps": 4, "guidance_scale": 1.0})
    batch = pixels(engine.render(params, FRAMES))
    (alone,) = pixels(engine.render(params, [FRAMES[1]]))
    assert np.abs(batch[1] - alone).max() <= 2
    (again,) = pixels(engine.render(params, [FRAMES[1]]))
    assert np.array_equal(alone, again)
    (other_seed,) = pixels(engine.render(params.model_copy(update={"seed": 8}), [FRAMES[1]]))
    assert np.abs(other_seed - alone).mean() > 1.0


def test_saving_settings_off_are_bit_identical_to_the_plain_loop(engine: Engine) -> None:
    plain = pixels(engine.render(PARAMS, FRAMES))
    items = engine.last_stats.unet_items
    off = pixels(engine.render(PARAMS.model_copy(update=SAVINGS_OFF), FRAMES))
    assert all(np.array_equal(a, b) for a, b in zip(plain, off, strict=True))
    assert engine.last_stats.unet_items == items and engine.last_stats.shallow_calls == 0


def test_guidance_until_drops_the_unconditional_branch_after_that_fraction(engine: Engine) -> None:
    full = pixels(engine.render(PARAMS, FRAMES))
    half = pixels(engine.render(PARAMS.model_copy(update={"guidance_until": 0.5}), FRAMES))
    # Steps 0-3 guided (first unconditional shared), steps 4-7 conditional only.
    assert engine.last_stats.unet_items == 3 * 4 * 2 - 2 + 3 * 4
    assert any(not np.array_equal(a, b) for a, b in zip(full, half, strict=True))
    assert min(psnr(a, b) for a, b in zip(full, half, strict=True)) > 20


def test_deep_cache_reuses_deep_features_between_full_steps(engine: Engine) -> None:
    full = pixels(engine.render(PARAMS, FRAMES))
    cached = pixels(engine.render(PARAMS.model_copy(update={"deep_cache_interval": 2}), FRAMES))
    stats = engine.last_stats
    # Step 0 evaluates one shared unconditional row (another batch layout), so step 1 is full too; then
    # full and shallow alternate: F F S F S F S F.
    assert stats.unet_calls == PARAMS.steps and stats.shallow_calls == 3
    assert any(not np.array_equal(a, b) for a, b in zip(full, cached, strict=True))
    assert min(psnr(a, b) for a, b in zip(full, cached, strict=True)) > 20


def test_deep_cache_from_runs_every_step_before_it_on_the_full_u_net(engine: Engine) -> None:
    full = pixels(engine.render(PARAMS, FRAMES))
    cached = pixels(engine.render(PARAMS.model_copy(update={"deep_cache_interval": 2}), FRAMES))
    late_params = PARAMS.model_copy(update={"deep_cache_interval": 2, "deep_cache_from": 0.5})
    late = pixels(engine.render(late_params, FRAMES))
    # Steps 0-3 full (ceil(0.5 x 8) = 4), then shallow and full alternate: F F F F S F S F.
    assert engine.last_stats.unet_calls == PARAMS.steps and engine.last_stats.shallow_calls == 2
    assert any(not np.array_equal(a, b) for a, b in zip(full, late, strict=True))
    # Closer to full compute than DeepCache from the first step, on every frame.
    for f, c, la in zip(full, cached, late, strict=True):
        assert psnr(f, la) > psnr(f, c)
    # From 1: every step full, the pixels of full compute.
    engine.render(PARAMS.model_copy(update={"deep_cache_interval": 2, "deep_cache_from": 1.0}), FRAMES)
    assert engine.last_stats.shallow_calls == 0


def test_the_shallow_path_with_fresh_deep_features_is_the_full_u_net(engine: Engine) -> None:
    from engine.deepcache import full_forward, shallow_forward

    unet = engine.pipe.unet
    generator = torch.Generator("cpu").manual_seed(0)
    sample = torch.randn((2, 4, 8, 8), generator=generator)
    hidden = torch.randn((2, 77, unet.config.cross_attention_dim), generator=generator)
    with torch.inference_mode():
        out, deep = full_forward(unet, sample, 500, hidden)
        again = shallow_forward(unet, sample, 500, hidden, deep)
    torch.testing.assert_close(again, out, rtol=1e-4, atol=1e-5)


def test_a_device_this_machine_lacks_is_one_clear_error() -> None:
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailable, match=r"SEGUE_DEVICE=cuda but this machine has no usable CUDA"):
            resolve_device("cuda")
    with pytest.raises(DeviceUnavailable, match="use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu please")


def test_half_precision_and_sdpa_on_cuda_float32_on_the_cpu(engine: Engine) -> None:
    assert dtype_for(torch.device("cuda")) == torch.float16
    assert dtype_for(torch.device("cuda", 1)) == torch.float16
    assert dtype_for(torch.device("cpu")) == torch.float32
    assert engine.dtype == torch.float32 and uses_sdpa(engine.pipe.unet)


def _random_lora(model_dir: Path, out: Path) -> Path:
    """A LoRA of rank 4 on the tiny U-Net's attention projections, with non-zero random weights."""
    from diffusers import UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(model_dir / "unet")
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    generator = torch.Generator("cpu").manual_seed(3)
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    out.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        out, unet_lora_layers=get_peft_model_state_dict(unet), weight_name="lora.safetensors"
    )
    return out / "lora.safetensors"


def test_a_lora_is_fused_at_load_and_is_part_of_the_model_revision(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A model given by its directory is not built in: SEGUE_LORA applies to it.
    model = tmp_path / "my-model"
    shutil.copytree(tiny_model_dir, model)
    lora = _random_lora(model, tmp_path / "loras")
    monkeypatch.delenv("SEGUE_LORA", raising=False)
    plain_revision = model_revision(str(model), tmp_path)
    plain = get_engine(str(model), device="cpu")
    assert plain.lora is None

    monkeypatch.setenv("SEGUE_LORA", str(lora))
    fused = get_engine(str(model), device="cpu")
    assert fused is not plain and fused.lora == lora
    fused_revision = model_revision(str(model), tmp_path)
    assert re.fullmatch(re.escape(plain_revision) + r"\+lora-[0-9a-f]{12}", fused_revision)
    # Built-in models keep their own weights and revision.
    assert "+lora-" not in model_revision("segue-tiny", tiny_model_dir.parent)
    params = PARAMS.model_copy(update={"model": str(model), "steps": 3})
    a = pixels(plain.render(params, [FRAMES[1]]))[0]
    b = pixels(fused.render(params, [FRAMES[1]]))[0]
    assert np.abs(a - b).mean() > 1.0
    # Fused: no adapter layers remain, a step costs what it did.
    assert not any("lora" in name for name, _ in fused.pipe.unet.named_parameters())

    monkeypatch.setenv("SEGUE_LORA", str(tmp_path / "missing.safetensors"))
    with pytest.raises(FileNotFoundError, match="SEGUE_LORA=.*missing.safetensors is not a file"):
        get_engine(str(model), device="cpu")
