"""DeepCache (Ma et al., CVPR 2024): reuse the U-Net's deep features across neighbouring denoising steps.

Adjacent steps change the U-Net's deep (low-resolution) features very little. A full step runs the whole
U-Net and keeps what enters its last up-block (the output of the one before); a shallow step runs only
conv_in, the first down-block and the last up-block, fed with those kept features and the shallow skip
connections it computes afresh. On SD 1.5 the paper reports 2.3x for -0.05 CLIPScore at N = 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from engine.hooks import hook_this_thread


@dataclass
class DeepFeatures:
    """What the last full step left: its features entering the last up-block, for one batch layout."""

    step: int
    layout: tuple[Any, ...]
    features: torch.Tensor


def full_forward(unet: Any, sample: torch.Tensor, timestep: Any, hidden: torch.Tensor) -> tuple[Any, Any]:
    """The stock U-Net forward (bit-identical), also returning the input of its last up-block."""
    kept: list[torch.Tensor] = []
    handle = hook_this_thread(unet.up_blocks[-2], kept.append)
    try:
        out = unet(sample, timestep, encoder_hidden_states=hidden, return_dict=False)[0]
    finally:
        handle.remove()
    return out, kept[0]


def shallow_forward(
    unet: Any, sample: torch.Tensor, timestep: Any, hidden: torch.Tensor, deep: torch.Tensor
) -> torch.Tensor:
    """conv_in -> first down-block -> last up-block (with `deep` for everything below) -> conv_out.

    Mirrors UNet2DConditionModel.forward for the text-conditioned models Segue loads (time embedding,
    optional text addition embedding, no class labels, adapters or ControlNet).
    """
    t_emb = unet.get_time_embed(sample=sample, timestep=timestep)
    emb = unet.time_embedding(t_emb, None)
    aug = unet.get_aug_embed(emb=emb, encoder_hidden_states=hidden, added_cond_kwargs={})
    emb = emb + aug if aug is not None else emb
    if unet.time_embed_act is not None:
        emb = unet.time_embed_act(emb)
    hidden = unet.process_encoder_hidden_states(encoder_hidden_states=hidden, added_cond_kwargs={})
    if unet.config.center_input_sample:
        sample = 2 * sample - 1.0
    x = unet.conv_in(sample)
    first = unet.down_blocks[0]
    if getattr(first, "has_cross_attention", False):
        _, res = first(hidden_states=x, temb=emb, encoder_hidden_states=hidden)
    else:
        _, res = first(hidden_states=x, temb=emb)
    last = unet.up_blocks[-1]
    skips = (x, *res)[: len(last.resnets)]
    if getattr(last, "has_cross_attention", False):
        out = last(hidden_states=deep, temb=emb, res_hidden_states_tuple=skips, encoder_hidden_states=hidden)
    else:
        out = last(hidden_states=deep, temb=emb, res_hidden_states_tuple=skips)
    if unet.conv_norm_out is not None:
        out = unet.conv_act(unet.conv_norm_out(out))
    return unet.conv_out(out)
