"""Transformer pieces of the projected autoencoder: rotary embeddings, attention, the factorised
space-time transformer (TimeSformer, divided attention) and the small axis transformer.

Token tensors are [N, S, D] (N sequences of S tokens of width D); space-time volumes are
[B, T, H', W', D]. Attention is `F.scaled_dot_product_attention` throughout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Rotary = tuple[Tensor, Tensor]  # (sin, cos), each [S, head_dim]


# --------------------------------------------------------------------------------------------
# Rotary embeddings (PVDM's recipe, docs/method.md §2.2)


def frame_rotary(frames: int, head_dim: int, *, device=None) -> Rotary:
    """1-D rotary table over frame index n: angle_j(n) = n * 10000^(-2 (j mod D/2) / D).

    The frequency vector is duplicated (not interleaved) while the rotation pairs neighbouring
    dimensions; this is PVDM's recipe, reproduced so official checkpoints behave the same.

    Returns:
        (sin, cos), each [frames, head_dim].
    """
    inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.arange(frames, device=device, dtype=torch.float32)[:, None] * inv[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.sin(), angles.cos()


def axial_rotary(height: int, width: int, head_dim: int, *, device=None, max_freq: float = 10.0) -> Rotary:
    """2-D axial rotary table for an [height, width] grid in row-major token order.

    Coordinates are linspace(-1, 1) per axis, scaled by head_dim/4 log-spaced factors from 1 to
    max_freq/2, times pi; the first half of the dimensions encodes the row, the second the column,
    each angle shared by a neighbouring pair of dimensions.

    Returns:
        (sin, cos), each [height * width, head_dim].
    """
    scales = torch.logspace(0.0, math.log2(max_freq / 2), head_dim // 4, base=2.0, device=device)
    rows = torch.linspace(-1.0, 1.0, height, device=device)[:, None] * scales * math.pi   # [H, D/4]
    cols = torch.linspace(-1.0, 1.0, width, device=device)[:, None] * scales * math.pi    # [W, D/4]
    angles = torch.cat([rows[:, None, :].expand(height, width, -1),
                        cols[None, :, :].expand(height, width, -1)], dim=-1).reshape(height * width, -1)
    angles = angles.repeat_interleave(2, dim=-1)
    return angles.sin(), angles.cos()


def rotate_pairs(x: Tensor) -> Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...) over the last dimension."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)


def apply_rotary(x: Tensor, rotary: Rotary) -> Tensor:
    """x * cos + rotate_pairs(x) * sin, for x [..., S, head_dim]."""
    sin, cos = rotary
    return x * cos.to(x.dtype) + rotate_pairs(x) * sin.to(x.dtype)


# --------------------------------------------------------------------------------------------
# Blocks


class Attention(nn.Module):
    """Pre-norm multi-head self-attention, optionally rotary: x -> out(SDPA(q, k, v)).

    q, k, v come from one bias-free projection D -> 3 * heads * head_dim; the output projection
    maps heads * head_dim -> D (with bias).
    """

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.out = nn.Linear(heads * head_dim, dim)

    def forward(self, x: Tensor, rotary: Rotary | None = None) -> Tensor:
        """[N, S, D] -> [N, S, D] (the residual branch only)."""
        n, s, _ = x.shape
        q, k, v = self.qkv(self.norm(x)).view(n, s, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if rotary is not None:
            q, k = apply_rotary(q, rotary), apply_rotary(k, rotary)
        y = F.scaled_dot_product_attention(q, k, v)  # [N, heads, S, head_dim]
        return self.out(y.transpose(1, 2).reshape(n, s, self.heads * self.head_dim))


class GegluFeedForward(nn.Module):
    """Pre-norm GEGLU MLP: D -> 2 * mult * D -> (value * GELU(gate)) -> D."""

    def __init__(self, dim: int, mult: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, 2 * mult * dim)
        self.down = nn.Linear(mult * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.up(self.norm(x)).chunk(2, dim=-1)
        return self.down(value * F.gelu(gate))


class GeluFeedForward(nn.Module):
    """Pre-norm GELU MLP: D -> hidden -> D."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.gelu(self.up(self.norm(x))))


class SpaceTimeBlock(nn.Module):
    """Divided attention: x += time_attn(x); x += space_attn(x); x += ff(x)."""

    def __init__(self, dim: int, heads: int, head_dim: int, ff_mult: int):
        super().__init__()
        self.time_attn = Attention(dim, heads, head_dim)
        self.space_attn = Attention(dim, heads, head_dim)
        self.ff = GegluFeedForward(dim, ff_mult)

    def forward(self, x: Tensor, time_rope: Rotary, space_rope: Rotary) -> Tensor:
        """[B, T, N, D] -> [B, T, N, D], N = H' W' tokens per frame (row-major)."""
        b, t, n, d = x.shape
        xt = x.transpose(1, 2).reshape(b * n, t, d)             # one sequence per location
        x = x + self.time_attn(xt, time_rope).view(b, n, t, d).transpose(1, 2)
        x = x + self.space_attn(x.reshape(b * t, n, d), space_rope).view(b, t, n, d)
        return x + self.ff(x)


class SpaceTimeTransformer(nn.Module):
    """A stack of `SpaceTimeBlock`s with frame rotary (time) and axial rotary (space) embeddings;
    no class token, no learned positions (the TimeSformer encoder/decoder of PVDM)."""

    def __init__(self, dim: int, depth: int, heads: int, head_dim: int, ff_mult: int):
        super().__init__()
        self.head_dim = head_dim
        self.blocks = nn.ModuleList(SpaceTimeBlock(dim, heads, head_dim, ff_mult) for _ in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        """[B, T, H', W', D] -> [B, T, H', W', D]."""
        b, t, h, w, d = x.shape
        time_rope = frame_rotary(t, self.head_dim, device=x.device)
        space_rope = axial_rotary(h, w, self.head_dim, device=x.device)
        x = x.reshape(b, t, h * w, d)
        for block in self.blocks:
            x = block(x, time_rope, space_rope)
        return x.view(b, t, h, w, d)


class AxisTransformer(nn.Module):
    """Plain pre-norm transformer (attention + GELU MLP), no positional scheme of its own."""

    def __init__(self, dim: int, depth: int, heads: int, head_dim: int, mlp: int):
        super().__init__()
        self.attn = nn.ModuleList(Attention(dim, heads, head_dim) for _ in range(depth))
        self.ff = nn.ModuleList(GeluFeedForward(dim, mlp) for _ in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        """[N, S, D] -> [N, S, D]."""
        for attn, ff in zip(self.attn, self.ff):
            x = x + attn(x)
            x = x + ff(x)
        return x
