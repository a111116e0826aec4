"""Noise paths between two seeds: exact endpoints, the variance each path keeps, translation's window."""

from __future__ import annotations

import pytest
import torch

from core.params import NoiseInterpolation
from engine.noise import PATHS, interpolate_noise, noise_between, seed_noise, translate, translate_mix

torch.set_num_threads(1)

SHAPE = (1, 4, 64, 64)  # 16384 values: the std of one sample is within ~0.01 of its expectation
A = seed_noise(1, SHAPE)
B = seed_noise(2, SHAPE)
INNER = [0.1, 0.25, 0.5, 0.75, 0.9]


def test_the_engine_offers_every_path_the_settings_name() -> None:
    from typing import get_args

    assert set(get_args(NoiseInterpolation)) <= set(PATHS)


@pytest.mark.parametrize("path", list(PATHS))
def test_every_path_has_exact_endpoints(path: str) -> None:
    assert torch.equal(interpolate_noise(A, B, 0.0, path), A)
    assert torch.equal(interpolate_noise(A, B, 1.0, path), B)


@pytest.mark.parametrize("path", list(PATHS))
def test_one_seed_gives_that_seeds_noise_on_every_path(path: str) -> None:
    for t in (0.0, 0.3, 0.5, 1.0):
        assert torch.equal(noise_between(5, 5, t, path, SHAPE), seed_noise(5, SHAPE))
    assert torch.equal(noise_between(5, 6, 0.0, path, SHAPE), seed_noise(5, SHAPE))
    assert torch.equal(noise_between(5, 6, 1.0, path, SHAPE), seed_noise(6, SHAPE))


def test_the_noise_of_a_seed_is_the_engines_historical_noise() -> None:
    # Frames rendered before paths existed drew exactly this tensor; their keys are reused.
    expected = torch.randn(SHAPE, generator=torch.Generator("cpu").manual_seed(7))
    assert torch.equal(seed_noise(7, SHAPE), expected)


def test_linear_midpoint_loses_variance() -> None:
    mid = interpolate_noise(A, B, 0.5, "linear")
    assert mid.std().item() == pytest.approx(0.707, abs=0.02)
    for t in INNER:
        expected = (t * t + (1 - t) * (1 - t)) ** 0.5
        assert interpolate_noise(A, B, t, "linear").std().item() == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("path", ["normalized", "slerp", "translate", "translate_mix"])
def test_normalized_slerp_and_translation_keep_unit_std(path: str) -> None:
    for t in INNER:
        assert interpolate_noise(A, B, t, path).std().item() == pytest.approx(1.0, abs=0.03), t


def test_normalized_is_linear_divided_by_its_std() -> None:
    t = 0.3
    expected = ((1 - t) * A + t * B) / (t * t + (1 - t) * (1 - t)) ** 0.5
    assert torch.allclose(interpolate_noise(A, B, t, "normalized"), expected, atol=1e-6)


def test_slerp_keeps_the_norm_and_moves_monotonically() -> None:
    previous = None
    for t in INNER:
        x = interpolate_noise(A, B, t, "slerp")
        assert x.norm().item() == pytest.approx(A.norm().item(), rel=0.02)
        distance = (x - A).norm().item()
        assert previous is None or distance > previous
        previous = distance


def test_translation_slides_a_window_over_the_two_latents() -> None:
    width = SHAPE[-1]
    joined = torch.cat([A, B], dim=-1)
    for offset in (1, 16, 32, 63):
        window = translate(A, B, offset / width)
        assert torch.equal(window, joined[..., offset : offset + width])
    # Both ends are the two latents themselves.
    assert torch.equal(translate(A, B, 0.0), A) and torch.equal(translate(A, B, 1.0), B)
    assert torch.equal(translate(A, B, 0.4 / width), A)  # rounds to no shift


def test_translate_mix_replaces_columns_in_place() -> None:
    width = SHAPE[-1]
    mixed = translate_mix(A, B, 10.5 / width)
    assert torch.equal(mixed[..., :10], B[..., :10])
    assert torch.equal(mixed[..., 11:], A[..., 11:])
    column = mixed[..., 10]
    assert not torch.equal(column, A[..., 10]) and not torch.equal(column, B[..., 10])


def test_unknown_paths_and_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="noise path must be one of"):
        interpolate_noise(A, B, 0.5, "cubic")
    with pytest.raises(ValueError, match="t must be"):
        interpolate_noise(A, B, 1.5, "slerp")
    with pytest.raises(ValueError, match="same shape"):
        interpolate_noise(A, B[..., :8], 0.5, "translate")
