"""Frame identity with keyframe images (core/timeline.py): which keys an image changes, and sharing."""

from __future__ import annotations

from core.params import PixelSettings
from core.timeline import TimelineKeyframe as Key
from core.timeline import frame_keys, plan_frames, share

PIXELS = PixelSettings(seed=1, steps=10, width=64, height=64)
A, B = "a city at night", "a forest at dawn"


def keys(image_a: str | None = None, image_b: str | None = None, pixels: PixelSettings = PIXELS) -> list[str]:
    plan = plan_frames([Key(0.0, A, image=image_a), Key(1.0, B, image=image_b)], 5)
    return frame_keys(pixels, plan, "rev")


def test_an_end_image_changes_every_frame_but_the_start_and_only_while_it_is_there() -> None:
    plain, red, blue = keys(), keys(image_b="f" * 64), keys(image_b="e" * 64)
    assert red[0] == plain[0] == blue[0]
    assert len({*plain[1:], *red[1:], *blue[1:]}) == 12
    assert keys(image_b=None) == plain


def test_what_image_keyframes_show_is_hashed_only_where_an_image_is() -> None:
    rebuilt = PIXELS.model_copy(update={"image_endpoints": "reconstruction"})
    assert keys(pixels=rebuilt) == keys()
    with_image, rebuilt_image = keys(image_a="f" * 64), keys(image_a="f" * 64, pixels=rebuilt)
    assert with_image[-1] == keys()[-1] == rebuilt_image[-1]  # the end frame touches no image
    assert all(x != y for x, y in zip(with_image[:-1], rebuilt_image[:-1], strict=True))


def test_trajectory_sharing_leaves_an_image_segment_in_full() -> None:
    keys_ = [Key(0.0, A), Key(0.5, "a garden", image="f" * 64), Key(1.0, B)]
    shared = share(plan_frames(keys_, 9), 5)
    assert all(p.start_step == 0 for p in shared)  # both segments touch the image
    plain = share(plan_frames([Key(0.0, A), Key(1.0, B)], 9), 5)
    assert any(p.start_step for p in plain)
