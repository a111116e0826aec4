"""Attention interpolation (AID, NeurIPS 2024): an in-between mixes its keyframes' keys and values.

In every attention layer of the U-Net (self and cross), for the first steps of a render, a frame at t
between keyframes a and b (rendered in the same U-Net call, plainly) attends with
- inner: K_t = (1 - t) K_a + t K_b, V_t likewise; softmax(Q K_tᵀ) V_t;
- outer: (1 - t) Attn(Q, K_a, V_a) + t Attn(Q, K_b, V_b);
- fused: its own K, V concatenated with K_t, V_t along the token axis;
where Q is the frame's own query. Every other row of the call (the keyframes themselves, the
classifier-free guidance's unconditional half, frames without a mix) attends plainly.

Installed through diffusers' attention-processor interface (`unet.set_attn_processor`) and computed with
torch's scaled_dot_product_attention. `mixing(unet)` installs the processors for the duration of a
render and puts the original ones back after; what a U-Net call mixes is set per call (`use(mix)`), per
thread, so a plain render on another thread sharing the U-Net meanwhile runs its original processors.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

Mode = Literal["inner", "outer", "fused"]
MODES: tuple[str, ...] = ("none", "inner", "outer", "fused")


def mix_attention(
    mode: str,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    ends: tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    t: torch.Tensor,
) -> torch.Tensor:
    """Attention of `query` (B, heads, N, d) under `mode`, with the ends' ((K_a, V_a), (K_b, V_b)).

    key/value are the frame's own (used by fused); t is (B, 1, 1, 1), where each row sits between a and b.
    """
    (key_a, value_a), (key_b, value_b) = ends
    if mode == "outer":
        return torch.lerp(
            F.scaled_dot_product_attention(query, key_a, value_a),
            F.scaled_dot_product_attention(query, key_b, value_b),
            t,
        )
    key_t, value_t = torch.lerp(key_a, key_b, t), torch.lerp(value_a, value_b, t)
    if mode == "inner":
        return F.scaled_dot_product_attention(query, key_t, value_t)
    if mode == "fused":
        return F.scaled_dot_product_attention(
            query, torch.cat([key, key_t], dim=2), torch.cat([value, value_t], dim=2)
        )
    raise ValueError(f"attention mode must be one of {', '.join(MODES[1:])}, got {mode!r}")


@dataclass(frozen=True)
class MixPart:
    """Rows of one U-Net call that mix in one mode: row r mixes rows a[r] and b[r] at t[r]."""

    mode: str
    rows: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    t: torch.Tensor


@dataclass(frozen=True)
class Mix:
    """What one U-Net call mixes: its batch size, the rows that attend plainly and the mixing parts."""

    batch: int
    plain: torch.Tensor
    parts: tuple[MixPart, ...]

    @classmethod
    def of(cls, batch: int, rows: Sequence[tuple[int, str, int, int, float]], device: Any) -> Mix:
        """rows: (row, mode, row of a, row of b, t) for each mixing row; every other row is plain."""
        mixing = {row for row, *_ in rows}
        parts = []
        for mode in dict.fromkeys(m for _, m, *_ in rows):
            mine = [r for r in rows if r[1] == mode]

            def column(i: int, mine: list[tuple[int, str, int, int, float]] = mine) -> torch.Tensor:
                return torch.tensor([r[i] for r in mine], dtype=torch.long, device=device)

            ts = torch.tensor([r[4] for r in mine], dtype=torch.float32, device=device)
            parts.append(MixPart(mode, column(0), column(2), column(3), ts.view(-1, 1, 1, 1)))
        plain = torch.tensor([r for r in range(batch) if r not in mixing], dtype=torch.long, device=device)
        return cls(batch, plain, tuple(parts))


_state = threading.local()


@contextmanager
def use(mix: Mix | None) -> Iterator[None]:
    """Mix the U-Net calls this thread makes inside the block (None: plain)."""
    previous = getattr(_state, "mix", None)
    _state.mix = mix
    try:
        yield
    finally:
        _state.mix = previous


class MixingProcessor:
    """diffusers' AttnProcessor2_0 with the mix of the current call; without one, the layer's original
    processor runs unchanged."""

    def __init__(self, original: Any):
        self.original = original

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        mix: Mix | None = getattr(_state, "mix", None)
        if mix is None or attention_mask is not None or hidden_states.shape[0] != mix.batch:
            return self.original(
                attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs
            )
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        out = torch.empty_like(query)
        if mix.plain.numel():
            p = mix.plain
            out[p] = F.scaled_dot_product_attention(query[p], key[p], value[p])
        for part in mix.parts:
            r, a, b = part.rows, part.a, part.b
            ends = ((key[a], value[a]), (key[b], value[b]))
            out[r] = mix_attention(part.mode, query[r], key[r], value[r], ends, part.t.to(query.dtype))

        hidden_states = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


_install_lock = threading.Lock()
_installed: dict[int, tuple[int, dict[str, Any]]] = {}  # id(unet) -> (renders using it, originals)


@contextmanager
def mixing(unet: Any) -> Iterator[None]:
    """Mixing processors on every attention layer of `unet` for the block; the originals are back after
    the last render using them ends (whatever way it ends)."""
    with _install_lock:
        users, originals = _installed.get(id(unet), (0, {}))
        if users == 0:
            originals = dict(unet.attn_processors)
            unet.set_attn_processor({name: MixingProcessor(p) for name, p in originals.items()})
        _installed[id(unet)] = (users + 1, originals)
    try:
        yield
    finally:
        with _install_lock:
            users, originals = _installed[id(unet)]
            if users == 1:
                unet.set_attn_processor(originals)
                del _installed[id(unet)]
            else:
                _installed[id(unet)] = (users - 1, originals)
