"""Property tests for the interpolation math: endpoints, norms, degenerate inputs, dtypes."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.interpolation import interpolate, lerp, normalized_lerp, slerp

seeds = st.integers(min_value=0, max_value=2**31 - 1)
fractions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
shapes = st.sampled_from([(1, 7), (3, 5), (2, 4, 3), (1, 77, 8)])
FUNCTIONS = {"lerp": lerp, "slerp": slerp, "normalized_lerp": normalized_lerp}

# The CPU is shared with other work; a wall-clock deadline would make these tests flaky, not stricter.
relaxed = settings(deadline=None)


def gaussian_pair(seed: int, shape: tuple[int, ...], dtype: torch.dtype = torch.float32):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(shape, generator=generator)
    b = torch.randn(shape, generator=generator)
    return a.to(dtype), b.to(dtype)


@pytest.mark.parametrize("name", FUNCTIONS)
@relaxed
@given(seed=seeds, shape=shapes, dtype=st.sampled_from([torch.float16, torch.float32, torch.float64]))
def test_endpoints_are_exact(name, seed, shape, dtype):
    a, b = gaussian_pair(seed, shape, dtype)
    assert torch.equal(FUNCTIONS[name](a, b, 0.0), a)
    assert torch.equal(FUNCTIONS[name](a, b, 1.0), b)


@pytest.mark.parametrize("name", FUNCTIONS)
@relaxed
@given(seed=seeds, shape=shapes, t=fractions, dtype=st.sampled_from([torch.float16, torch.bfloat16]))
def test_dtype_and_shape_are_preserved(name, seed, shape, t, dtype):
    a, b = gaussian_pair(seed, shape, dtype)
    out = FUNCTIONS[name](a, b, t)
    assert out.dtype == dtype
    assert out.shape == a.shape
    assert torch.isfinite(out).all()


@relaxed
@given(seed=seeds, shape=shapes, t=fractions, scale=st.floats(min_value=1e-3, max_value=1e3))
def test_slerp_keeps_the_norm_of_equal_norm_inputs(seed, shape, t, scale):
    a, b = gaussian_pair(seed, shape, torch.float64)
    flat_a, flat_b = a.reshape(shape[0], -1), b.reshape(shape[0], -1)
    # Give every batch item of b the norm of the matching item of a, then scale both.
    b = (flat_b * flat_a.norm(dim=1, keepdim=True) / flat_b.norm(dim=1, keepdim=True)).reshape(shape)
    a, b = a * scale, b * scale
    cos_theta = torch.nn.functional.cosine_similarity(a.reshape(shape[0], -1), b.reshape(shape[0], -1))
    assume(bool((cos_theta.abs() < 0.999).all()))  # near-parallel items take the lerp fallback
    out = slerp(a, b, t).reshape(shape[0], -1)
    torch.testing.assert_close(out.norm(dim=1), a.reshape(shape[0], -1).norm(dim=1), rtol=1e-9, atol=0)


@relaxed
@given(seed=seeds, t=fractions)
def test_slerp_keeps_the_norm_of_float32_inputs(seed, t):
    a, b = gaussian_pair(seed, (2, 64))
    b = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)
    torch.testing.assert_close(slerp(a, b, t).norm(dim=1), a.norm(dim=1), rtol=1e-5, atol=0)


@relaxed
@given(
    seed=seeds, t=fractions, wiggle=st.floats(min_value=0.0, max_value=1e-3), sign=st.sampled_from([1, -1])
)
def test_slerp_of_near_parallel_vectors_is_lerp(seed, t, wiggle, sign):
    a, noise = gaussian_pair(seed, (2, 16))
    b = sign * a + wiggle * noise  # |cos θ| > 0.9995: the angle is too small (or ~π) to divide by
    out = slerp(a, b, t)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, lerp(a, b, t), rtol=1e-5, atol=1e-6)


@relaxed
@given(seed=seeds, t=fractions)
def test_slerp_with_a_zero_vector_is_lerp(seed, t):
    a, _ = gaussian_pair(seed, (1, 16))
    zero = torch.zeros_like(a)
    torch.testing.assert_close(slerp(zero, a, t), lerp(zero, a, t))


@relaxed
@given(seed=seeds, t=fractions)
def test_slerp_treats_each_batch_item_on_its_own(seed, t):
    a, b = gaussian_pair(seed, (3, 4, 5))
    whole = slerp(a, b, t)
    one_by_one = torch.cat([slerp(a[i : i + 1], b[i : i + 1], t) for i in range(3)])
    torch.testing.assert_close(whole, one_by_one)


def test_slerp_of_orthogonal_unit_vectors_follows_the_circle():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    expected = torch.tensor([[math.cos(math.pi / 6), math.sin(math.pi / 6)]])
    torch.testing.assert_close(slerp(a, b, 1 / 3), expected)


@settings(max_examples=20, deadline=None)
@given(seed=seeds)
def test_midpoint_variance_of_independent_gaussians(seed):
    a, b = gaussian_pair(seed, (1, 200_000))
    assert lerp(a, b, 0.5).var().item() == pytest.approx(0.5, abs=0.02)
    assert normalized_lerp(a, b, 0.5).var().item() == pytest.approx(1.0, abs=0.02)


@relaxed
@given(seed=seeds, t=fractions)
def test_interpolate_dispatches_by_method(seed, t):
    a, b = gaussian_pair(seed, (2, 8))
    assert torch.equal(interpolate(a, b, t, "lerp"), lerp(a, b, t))
    assert torch.equal(interpolate(a, b, t, "slerp"), slerp(a, b, t))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a, b: interpolate(a, b, 0.5, "cubic"), "method must be one of lerp, slerp"),
        (lambda a, b: lerp(a, b, 1.5), r"t must be a finite number in \[0, 1\]"),
        (lambda a, b: slerp(a, b, float("nan")), r"t must be a finite number in \[0, 1\]"),
        (lambda a, b: lerp(a, b[:, :2], 0.5), "same shape"),
        (lambda a, b: slerp(a, b, 0.5, dot_threshold=1.0), r"dot_threshold must be in \(0, 1\)"),
    ],
)
def test_bad_arguments_are_named(call, message):
    a, b = gaussian_pair(0, (1, 4))
    with pytest.raises(ValueError, match=message):
        call(a, b)
