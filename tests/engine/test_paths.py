"""Paths in the engine on the tiny model: the loop equals diffusers' pipeline, seed travel, switch at step k
(what the U-Net sees per step), trajectory sharing (in-betweens start at step k), one unconditional pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.params import PixelSettings, RenderSnapshot
from engine.interpolation import slerp
from engine.pipeline import SCHEDULERS, STOCHASTIC_SCHEDULERS, Engine, FrameRequest, SharedStart, check_inputs
from engine.probe import place
from engine.sampling import step_noise
from tests.support.pixels import pixels
from tests.support.unet import UNetCalls

torch.set_num_threads(1)

CAT, BICYCLE = "a cat", "a photo of a red bicycle"
PARAMS = PixelSettings(
    model="segue-tiny", negative_prompt="", seed=7, steps=5, guidance_scale=12.0, width=64, height=64
)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a - b).max())


@pytest.fixture(scope="module")
def engine(tiny_model_dir) -> Engine:  # type: ignore[no-untyped-def]
    return Engine.load(str(tiny_model_dir), device="cpu")


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_the_loop_computes_what_the_diffusers_pipeline_computes(engine: Engine, scheduler: str) -> None:
    params = PARAMS.model_copy(update={"scheduler": scheduler})
    frames = [FrameRequest(CAT, BICYCLE, t) for t in (0.0, 0.4, 1.0)]
    ours = pixels(engine.render(params, frames))
    from engine.interpolation import interpolate

    embeddings = engine.encode(["", CAT, BICYCLE])
    pipe = engine._pipeline_for_call(scheduler)
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(params.seed))
    # A stochastic scheduler's step noise: the same for every frame, drawn afresh from the seed per step.
    generators = step_noise(params.seed, 0, len(frames))

    def reseed(pipe, i, t, kwargs):  # type: ignore[no-untyped-def]
        for generator in generators:
            generator.manual_seed(step_noise(params.seed, i + 1, 1)[0].initial_seed())
        return kwargs

    stochastic = scheduler in STOCHASTIC_SCHEDULERS
    with torch.inference_mode():
        theirs = pipe(
            prompt_embeds=torch.cat(
                [interpolate(embeddings[CAT], embeddings[BICYCLE], f.local_t) for f in frames]
            ),
            negative_prompt_embeds=embeddings[""].repeat(3, 1, 1),
            latents=noise.repeat(3, 1, 1, 1),
            num_inference_steps=params.steps,
            guidance_scale=params.guidance_scale,
            width=64,
            height=64,
            output_type="pil",
            generator=generators if stochastic else None,
            callback_on_step_end=reseed if stochastic else None,
        ).images
    for a, b in zip(ours, pixels(theirs), strict=True):
        assert max_diff(a, b) <= 2


def test_seed_travel_starts_each_frame_from_its_own_noise(engine: Engine) -> None:
    a, b = 3, 11
    frames = [
        FrameRequest(CAT, CAT, 0.0, seed_a=a, seed_b=b, noise_t=0.0),
        FrameRequest(CAT, CAT, 0.0, seed_a=a, seed_b=b, noise_t=0.5, noise_path="slerp"),
        FrameRequest(CAT, CAT, 0.0, seed_a=a, seed_b=b, noise_t=1.0),
    ]
    start, middle, end = pixels(engine.render(PARAMS, frames))
    (seed_a,) = pixels(engine.render(PARAMS.model_copy(update={"seed": a}), [FrameRequest(CAT, CAT, 0.0)]))
    (seed_b,) = pixels(engine.render(PARAMS.model_copy(update={"seed": b}), [FrameRequest(CAT, CAT, 0.0)]))
    assert max_diff(start, seed_a) <= 2 and max_diff(end, seed_b) <= 2
    assert max_diff(middle, start) > 3 and max_diff(middle, end) > 3


@pytest.mark.parametrize("path", ["linear", "normalized", "slerp", "translate"])
def test_every_noise_path_renders_and_one_seed_is_one_picture(engine: Engine, path: str) -> None:
    frames = [
        FrameRequest(CAT, BICYCLE, 0.5, seed_a=4, seed_b=4, noise_t=0.5, noise_path=path),
        FrameRequest(CAT, BICYCLE, 0.5, noise_path=path),
    ]
    same_seed, default_seed = pixels(engine.render(PARAMS.model_copy(update={"seed": 4}), frames))
    assert max_diff(same_seed, default_seed) <= 1


def test_switch_at_step_k_conditions_exactly_the_first_k_steps(engine: Engine) -> None:
    k = 2
    embeddings = engine.encode(["", CAT, BICYCLE])
    blend = torch.lerp(embeddings[CAT], embeddings[BICYCLE], 0.5)
    frames = [FrameRequest(CAT, BICYCLE, 0.5, switch_step=k), FrameRequest(CAT, BICYCLE, 0.5)]
    with UNetCalls(engine) as unet:
        engine.render(PARAMS.model_copy(update={"seed": 5}), frames)
    assert len(unet.calls) == PARAMS.steps
    for step, call in enumerate(unet.calls):
        hidden = call["hidden"]
        # The unconditional rows (one at step 0: both frames start from the same noise), then the frames'.
        assert hidden.shape[0] == (3 if step == 0 else 4)
        switched, plain = hidden[-2], hidden[-1]
        expected = embeddings[CAT][0] if step < k else blend[0]
        assert torch.allclose(switched, expected, atol=1e-6), step
        assert torch.allclose(plain, blend[0], atol=1e-6), step


def test_a_switched_frame_differs_from_both_prompts_and_a_late_switch_is_prompt_a(engine: Engine) -> None:
    switched, plain, cat, late = pixels(
        engine.render(
            PARAMS,
            [
                FrameRequest(CAT, BICYCLE, 1.0, switch_step=2),
                FrameRequest(CAT, BICYCLE, 1.0),
                FrameRequest(CAT, CAT, 0.0),
                FrameRequest(CAT, BICYCLE, 1.0, switch_step=PARAMS.steps),
            ],
        )
    )
    assert max_diff(switched, plain) > 2
    # Early steps decide most of the picture: switched after 2 of 5 steps, it sits nearer the cat.
    assert np.abs(switched - cat).mean() < np.abs(plain - cat).mean()
    assert max_diff(late, cat) <= 2


def test_trajectory_sharing_starts_in_betweens_at_step_k(engine: Engine) -> None:
    params = PARAMS.model_copy(update={"steps": 6, "seed": 9})
    k = 3
    left, right = FrameRequest(CAT, BICYCLE, 0.0), FrameRequest(CAT, BICYCLE, 1.0)
    between = FrameRequest(CAT, BICYCLE, 0.5, start=SharedStart(left, right, 0.5, k))
    engine._latents.clear()
    with UNetCalls(engine) as unet:
        images = engine.render(params, [left, right, between])
    timesteps = SCHEDULERS["dpmsolver"].from_config(engine.pipe.scheduler.config)
    timesteps.set_timesteps(params.steps)
    # One U-Net call per step. The anchors are in every call (one unconditional row at step 0: same noise);
    # the in-between joins at step k (2 rows with guidance): it costs steps - k evaluations, not steps.
    assert [int(c["timestep"]) for c in unet.calls] == [int(t) for t in timesteps.timesteps]
    assert [c["sample"].shape[0] for c in unet.calls] == [3] + [4] * (k - 1) + [6] * (params.steps - k)
    assert engine.last_stats.unet_items == 3 + 4 * (params.steps - 1) + 2 * (params.steps - k)
    # It started from the slerp of its anchors' latents after k steps (DPM-Solver scales nothing).
    key = params.model_dump_json()
    la, lb = engine._cached_latents(key, left, k), engine._cached_latents(key, right, k)
    assert la is not None and lb is not None
    assert torch.allclose(unet.calls[k]["sample"][4], slerp(la[None], lb[None], 0.5)[0], atol=1e-5)
    # Rendered in a later batch (anchors' latents kept, or recomputed in a fresh engine): the same picture.
    (again,) = pixels(engine.render(params, [between]))
    fresh = Engine(engine.pipe, model_name=engine.model_name, device=engine.device, dtype=engine.dtype)
    with UNetCalls(fresh) as unet_fresh:
        (recomputed,) = pixels(fresh.render(params, [between]))
    # The anchors' first k steps (not cached in a fresh engine), then the in-between: still one call a step.
    assert [c["sample"].shape[0] for c in unet_fresh.calls] == [3] + [4] * (k - 1) + [2] * (params.steps - k)
    first = pixels(images)[2]
    assert max_diff(first, again) <= 2 and max_diff(first, recomputed) <= 2
    # ... and it lies between its anchors, unlike a picture of either.
    a, b = pixels(images)[:2]
    assert max_diff(first, a) > 2 and max_diff(first, b) > 2


def test_keep_latents_at_lets_a_later_batch_skip_its_anchors(engine: Engine) -> None:
    params = PARAMS.model_copy(update={"steps": 6, "seed": 21})
    left, right = FrameRequest(CAT, BICYCLE, 0.0), FrameRequest(CAT, BICYCLE, 0.5)
    engine.render(params, [left, right], keep_latents_at=[4])
    with UNetCalls(engine) as unet:
        engine.render(params, [FrameRequest(CAT, BICYCLE, 0.25, start=SharedStart(left, right, 0.5, 4))])
    assert len(unet.calls) == 2  # steps 4 and 5 only


def test_the_first_unconditional_pass_is_shared_only_when_the_noise_is(engine: Engine) -> None:
    one_noise = [FrameRequest(CAT, BICYCLE, t) for t in (0.2, 0.5, 0.8)]
    travel = [FrameRequest(CAT, BICYCLE, t, seed_a=1, seed_b=2, noise_t=t) for t in (0.2, 0.5, 0.8)]
    with UNetCalls(engine) as unet:
        batched = pixels(engine.render(PARAMS, one_noise))
        engine.render(PARAMS, travel)
    steps = PARAMS.steps
    assert [c["sample"].shape[0] for c in unet.calls[:steps]] == [4] + [6] * (steps - 1)
    assert [c["sample"].shape[0] for c in unet.calls[steps:]] == [6] * steps
    alone = [pixels(engine.render(PARAMS, [f]))[0] for f in one_noise]
    for a, b in zip(batched, alone, strict=True):
        assert max_diff(a, b) <= 2


def test_identical_requests_are_rendered_once(engine: Engine) -> None:
    frame = FrameRequest(CAT, BICYCLE, 0.3)
    with UNetCalls(engine) as unet:
        images = pixels(engine.render(PARAMS, [frame, frame, FrameRequest(CAT, BICYCLE, 0.6), frame]))
    assert unet.calls[1]["sample"].shape[0] == 4  # two distinct frames
    assert max_diff(images[0], images[1]) == 0 and max_diff(images[0], images[3]) == 0


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (FrameRequest(CAT, BICYCLE, 0.5, noise_t=1.5), r"frames\[0\].noise_t must be a number in \[0, 1\]"),
        (FrameRequest(CAT, BICYCLE, 0.5, seed_a=-1), r"frames\[0\].seed_a must be between 0 and 4294967295"),
        (FrameRequest(CAT, BICYCLE, 0.5, noise_path="cubic"), r"frames\[0\].noise_path must be one of"),
        (FrameRequest(CAT, BICYCLE, 0.5, switch_step=-2), r"frames\[0\].switch_step must be a whole number"),
        (
            FrameRequest(
                CAT,
                BICYCLE,
                0.5,
                start=SharedStart(FrameRequest(CAT, CAT, 0), FrameRequest(CAT, CAT, 0), 0.5, 5),
            ),
            r"frames\[0\].start.step must be between 1 and 4",
        ),
    ],
)
def test_check_inputs_names_the_path_argument(frame: FrameRequest, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_inputs(PARAMS, [frame])


def _snapshot(**changes: object) -> RenderSnapshot:
    base = dict(
        model="segue-tiny",
        seed=3,
        steps=4,
        guidance_scale=12.0,
        width=64,
        height=64,
        frames=6,
        batch_size=4,
        keyframes=[{"position": 0.0, "prompt": CAT}, {"position": 1.0, "prompt": BICYCLE, "seed": 8}],
    )
    return RenderSnapshot.model_validate({**base, **changes})


def test_a_perceptual_probe_pass_gives_a_warp(engine: Engine) -> None:
    placement = place(engine, _snapshot(spacing="perceptual", spacing_budget=5))
    assert placement.probe_ts == [0.0, 0.25, 0.5, 0.75, 1.0] and placement.probe_frames == 5
    assert placement.warp is not None and all(d > 0 for d in placement.probe_distances)
    ts = [placement.warp(u) for u in (0.0, 0.5, 1.0)]
    assert ts[0] == 0.0 and 0.0 < ts[1] < 1.0 and ts[2] == 1.0


def test_an_adaptive_probe_pass_refines_within_its_budget(engine: Engine) -> None:
    placement = place(engine, _snapshot(spacing="adaptive", spacing_budget=3))
    assert placement.times is not None
    assert placement.times[0] == 0.0 and placement.times[-1] == 1.0
    assert len(placement.times) <= 6 + 3 and len(set(placement.times)) == len(placement.times)
    assert placement.reason in ("threshold", "budget", "unsplittable")
    with pytest.raises(ValueError, match="needs no probe pass"):
        place(engine, _snapshot(spacing="uniform"))
