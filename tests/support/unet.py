"""Watching the engine's U-Net: what it sees on every call."""

from __future__ import annotations

import torch

from engine.pipeline import Engine


class UNetCalls:
    """Records what the U-Net sees on every call: timestep, input latents and conditioning."""

    def __init__(self, engine: Engine) -> None:
        self.calls: list[dict[str, torch.Tensor]] = []
        self.handle = engine.pipe.unet.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):  # type: ignore[no-untyped-def]
        sample, timestep = args[0], args[1]
        self.calls.append(
            {
                "sample": sample.detach().clone(),
                "timestep": torch.as_tensor(timestep).clone(),
                "hidden": kwargs["encoder_hidden_states"].detach().clone(),
            }
        )

    def __enter__(self) -> UNetCalls:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()
