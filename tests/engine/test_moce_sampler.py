"""MoCE's two-phase sampler on the tiny model: what the U-Net sees at every step.

Steps [0, N) are conditioned on the early blend (the first concept in place of its keyframe's prompt,
interpolated at the frame's local t like the prompts are); steps [N, steps) on the frame's own blend. The
switch happens exactly at step N, frame by frame inside one batch, and the worker's stored frame rows
(early_a / early_b) reach the engine unchanged.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core.params import PixelSettings
from engine.interpolation import interpolate
from engine.pipeline import Engine, FrameRequest, check_inputs
from engine.probe import requests_for
from tests.support.unet import UNetCalls

torch.set_num_threads(1)

FULL, BOAT, DESERT, CITY = "a boat in the desert", "a boat", "a desert", "a city at night"
PARAMS = PixelSettings(
    model="segue-tiny", negative_prompt="", seed=3, steps=6, guidance_scale=7.0, width=64, height=64
)


@pytest.fixture(scope="module")
def engine(tiny_model_dir) -> Engine:  # type: ignore[no-untyped-def]
    return Engine.load(str(tiny_model_dir), device="cpu")


@pytest.mark.parametrize("n", [0, 1, 4, PARAMS.steps])
@pytest.mark.parametrize("interpolation", ["lerp", "slerp"])
def test_the_two_phase_sampler_switches_exactly_at_step_n(engine: Engine, n: int, interpolation: str) -> None:
    params = PARAMS.model_copy(update={"text_interpolation": interpolation})
    e = engine.encode(["", FULL, BOAT, CITY])
    frames = [
        # exactly on the MoCE keyframe: the first concept alone for N steps, then the full prompt
        FrameRequest(FULL, CITY, 0.0, switch_step=n, early_a=BOAT, early_b=CITY),
        # inside the segment after it: the early blend puts the first concept in the keyframe's place
        FrameRequest(FULL, CITY, 0.25, switch_step=n, early_a=BOAT, early_b=CITY),
        # a plain frame in the same batch never switches
        FrameRequest(FULL, CITY, 0.25),
    ]
    early = [e[BOAT], interpolate(e[BOAT], e[CITY], 0.25, interpolation), None]
    late = [
        e[FULL],
        interpolate(e[FULL], e[CITY], 0.25, interpolation),
        interpolate(e[FULL], e[CITY], 0.25, interpolation),
    ]
    with UNetCalls(engine) as unet:
        engine.render(params, frames)
    assert len(unet.calls) == params.steps
    for step, call in enumerate(unet.calls):
        rows = call["hidden"][-len(frames) :]  # the conditional rows follow the unconditional ones
        for i, row in enumerate(rows):
            expected = early[i] if early[i] is not None and step < n else late[i]
            assert torch.allclose(row, expected[0], atol=1e-6), (step, i)
    # Each phase differs from the other, so the assertions above pin the step the switch happens at.
    assert not torch.allclose(early[0], late[0]) and not torch.allclose(early[1], late[1])


def test_moce_proper_is_the_first_concept_early_then_the_full_prompt_and_batches_do_not_matter(
    engine: Engine,
) -> None:
    params = PARAMS.model_copy(update={"steps": 8})
    moce = FrameRequest(FULL, CITY, 0.0, switch_step=3, early_a=BOAT, early_b=CITY)
    # The same frame the worker's search probes: prompt_a = the first concept, blend at 1 = the full prompt.
    probe = FrameRequest(BOAT, FULL, 1.0, switch_step=3)
    plain, first = FrameRequest(FULL, FULL, 0.0), FrameRequest(BOAT, BOAT, 0.0)
    images = [np.asarray(i, dtype=np.int16) for i in engine.render(params, [moce, probe, plain, first])]
    alone = np.asarray(engine.render(params, [moce])[0], dtype=np.int16)
    assert np.abs(images[0] - images[1]).max() <= 1  # two spellings of one conditioning schedule
    assert np.abs(images[0] - alone).max() <= 1  # in a batch or alone
    # Not the full prompt: early steps decide most of the picture, so it sits nearer the first concept.
    assert np.abs(images[0] - images[2]).max() > 2
    assert np.abs(images[0] - images[3]).mean() < np.abs(images[0] - images[2]).mean()
    # N >= steps is the first concept for every step.
    (whole,) = engine.render(
        params, [FrameRequest(FULL, CITY, 0.0, switch_step=8, early_a=BOAT, early_b=CITY)]
    )
    assert np.abs(np.asarray(whole, dtype=np.int16) - images[3]).max() <= 1


def test_stored_frames_carry_their_early_prompts_to_the_engine() -> None:
    row = SimpleNamespace(
        prompt_a=FULL,
        prompt_b=CITY,
        local_t=0.5,
        seed_a=None,
        seed_b=None,
        noise_t=0.0,
        noise_path="slerp",
        switch_step=5,
        start_step=0,
        anchor_a=None,
        anchor_b=None,
        t=0.75,
        early_a=BOAT,
        early_b=CITY,
    )
    (request,) = requests_for([row], {})
    assert (request.early_a, request.early_b, request.switch_step) == (BOAT, CITY, 5)
    assert request.early == (BOAT, CITY)
    with pytest.raises(ValueError, match=r"frames\[0\].early_a must be a string or None"):
        check_inputs(PARAMS, [FrameRequest(FULL, CITY, 0.5, early_a=3)])  # type: ignore[arg-type]
