"""Building blocks of the triplane UNet (docs/method.md §3.3), all with one call signature.

The hidden state is a `Planes`: the three planes of a triplane latent (xy [H', W'], yt [T, W'],
xt [T, H']), where planes of equal shape are stacked along the batch axis into one tensor, so a
shared-weight 2-D layer runs once per distinct shape rather than once per plane (for square
latents: twice, xy and yt+xt). Every block is called as `block(h: Planes, emb: [B, E]) -> Planes`.

Blocks:
- `PlaneConv`: 3x3 convolution of every plane (the stem).
- `ResBlock`: GN-SiLU-conv, scale-shift conditioning on the timestep embedding, GN-SiLU-dropout-
  zero-initialised conv, residual; up/down variants resample both axes of every plane (so the
  time axis of yt/xt halves too).
- `PlaneAttention`: self-attention among the tokens of each plane.
- `CrossPlaneAttention`: self-attention over the tokens of all three planes of one latent together
  (mixes the planes of one modality; modalities meet only in `joint_unet`'s cross-attention).
- `OutputHead`: GN-SiLU-zero-initialised conv.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from syncvp.models.triplane import TriplaneShape

PlaneShapes = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


# --------------------------------------------------------------------------------------------
# The hidden state


@dataclass(frozen=True)
class PlaneLayout:
    """Plane shapes (rows, cols) of xy, yt, xt and how planes are grouped (equal shapes)."""

    shapes: PlaneShapes
    groups: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, shape: TriplaneShape) -> "PlaneLayout":
        groups: dict[tuple[int, int], list[int]] = {}
        for i, s in enumerate(shape.plane_shapes):
            groups.setdefault(s, []).append(i)
        return cls(shape.plane_shapes, tuple(tuple(g) for g in groups.values()))

    @property
    def lengths(self) -> tuple[int, int, int]:
        return tuple(r * c for r, c in self.shapes)

    @property
    def length(self) -> int:
        return sum(self.lengths)


class Planes:
    """The UNet state: one tensor per group, [n_g * B, C, rows, cols], planes stacked in order.

    Attributes:
        layout: current plane shapes and the grouping (fixed for a whole network).
        tensors: one tensor per group.
        batch: B.
    """

    __slots__ = ("layout", "tensors", "batch")

    def __init__(self, layout: PlaneLayout, tensors: tuple[Tensor, ...], batch: int):
        self.layout, self.tensors, self.batch = layout, tuple(tensors), batch

    @classmethod
    def from_latent(cls, latent: Tensor, layout: PlaneLayout) -> "Planes":
        """[B, C, L] in the order [xy | yt | xt] -> Planes."""
        if latent.shape[-1] != layout.length:
            raise ValueError(f"latent length {latent.shape[-1]} does not match the planes {layout.shapes}")
        b, c = latent.shape[:2]
        parts = torch.split(latent, layout.lengths, dim=-1)
        tensors = []
        for group in layout.groups:
            r, cols = layout.shapes[group[0]]
            planes = [parts[i].reshape(b, c, r, cols) for i in group]
            tensors.append(planes[0] if len(planes) == 1 else torch.cat(planes, dim=0))
        return cls(layout, tuple(tensors), b)

    def to_latent(self) -> Tensor:
        """Planes -> [B, C, L] in the order [xy | yt | xt]."""
        flat = [None, None, None]
        for group, x in zip(self.layout.groups, self.tensors):
            for k, i in enumerate(group):
                flat[i] = x[k * self.batch:(k + 1) * self.batch].flatten(2)
        return torch.cat(flat, dim=-1)

    def map(self, fn) -> "Planes":
        """Apply fn(group_tensor, n_planes) -> tensor to every group; shapes follow the outputs."""
        out = tuple(fn(x, len(g)) for g, x in zip(self.layout.groups, self.tensors))
        shapes = list(self.layout.shapes)
        for g, x in zip(self.layout.groups, out):
            for i in g:
                shapes[i] = tuple(x.shape[-2:])
        return Planes(PlaneLayout(tuple(shapes), self.layout.groups), out, self.batch)

    def with_tensors(self, tensors) -> "Planes":
        return Planes(self.layout, tuple(tensors), self.batch).map(lambda x, n: x)

    @property
    def channels(self) -> int:
        return self.tensors[0].shape[1]


def concat_skip(h: Planes, skip: Planes) -> Planes:
    """Channel-concatenate the skip, first cropping h to the skip's plane shapes (after an odd
    axis was halved with ceil and doubled again)."""
    out = []
    for x, s in zip(h.tensors, skip.tensors):
        r, c = s.shape[-2:]
        if x.shape[-2] < r or x.shape[-1] < c:
            raise ValueError(f"plane {tuple(x.shape[-2:])} is smaller than its skip {(r, c)}")
        out.append(torch.cat([x[..., :r, :c], s], dim=1))
    return h.with_tensors(out)


def repeat_rows(e: Tensor, n: int) -> Tensor:
    """Per-sample rows [B, ...] repeated for a group of n stacked planes -> [n B, ...]."""
    return e if n == 1 else e.repeat(n, *([1] * (e.ndim - 1)))


# --------------------------------------------------------------------------------------------
# Timestep embedding


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding [B, dim] of integer timesteps t [B], ordered [cos | sin] (ADM/LDM):
    frequencies exp(-ln(max_period) k / (dim/2)), k = 0..dim/2-1; odd dims are zero-padded."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class TimestepEmbedding(nn.Module):
    """t [B] -> Linear(C, E) - SiLU - Linear(E, E) of the sinusoidal embedding, E = 4 C."""

    def __init__(self, channels: int, emb_dim: int):
        super().__init__()
        self.channels = channels
        self.mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_embedding(t, self.channels))


# --------------------------------------------------------------------------------------------
# Blocks (one signature: block(h: Planes, emb: [B, E]) -> Planes)


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class PlaneConv(nn.Module):
    """3x3 convolution of every plane (shared weights)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, h: Planes, emb: Tensor | None = None) -> Planes:
        return h.map(lambda x, n: self.conv(x))


class ResBlock(nn.Module):
    """Residual block with scale-shift timestep conditioning (ADM, docs/method.md §3.3):

        h = conv_in(SiLU(GN(x)))                       (resampled after the SiLU for up/down)
        h = conv_out(dropout(SiLU(GN(h) (1 + s) + b)))  with (s, b) = Linear(SiLU(emb))
        out = skip(x) + h                              (conv_out zero-initialised; skip 1x1 if C changes)

    Down halves both axes of every plane (2x2 average pool, ceil for odd sizes); up doubles them
    (nearest).
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, *, norm_groups: int,
                 dropout: float = 0.0, resample: Literal["up", "down"] | None = None):
        super().__init__()
        self.resample = resample
        self.norm_in = nn.GroupNorm(norm_groups, in_channels)
        self.conv_in = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_channels)
        self.norm_out = nn.GroupNorm(norm_groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv_out = zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def _resample(self, x: Tensor) -> Tensor:
        if self.resample == "down":
            return F.avg_pool2d(x, 2, ceil_mode=True)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x

    def _forward(self, x: Tensor, scale_shift: Tensor) -> Tensor:
        h = F.silu(self.norm_in(x))
        if self.resample:
            h, x = self._resample(h), self._resample(x)
        h = self.conv_in(h)
        scale, shift = scale_shift[..., None, None].chunk(2, dim=1)
        h = torch.addcmul(shift, self.norm_out(h), 1 + scale)
        h = self.conv_out(self.dropout(F.silu(h)))
        return self.skip(x) + h

    def forward(self, h: Planes, emb: Tensor) -> Planes:
        scale_shift = self.emb_proj(F.silu(emb))
        return h.map(lambda x, n: self._forward(x, repeat_rows(scale_shift, n)))


def attention(qkv: Tensor, heads: int) -> Tensor:
    """Multi-head self-attention, token-major: qkv [N, T, 3C] -> [N, T, C], softmax(q k^T / sqrt(d)) v.

    The channel layout is the "legacy" one of ADM/PVDM checkpoints: heads first, then q/k/v,
    then the d = C / heads channels of each head. q, k, v keep a unit stride on their last axis
    so that PyTorch's fused (flash) CPU/GPU kernels apply (about 4x faster than the math path).
    """
    n, length, width = qkv.shape
    d = width // (3 * heads)
    q, k, v = qkv.view(n, length, heads, 3, d).permute(3, 0, 2, 1, 4).unbind(0)  # [N, heads, T, d]
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(n, length, heads * d)


class _SelfAttention(nn.Module):
    """x [N, C, T] -> x + proj_out(attn(qkv(GN(x)))), proj_out zero-initialised.

    qkv and proj_out are 1x1 convolutions (the checkpoint layout), applied token-major as
    linear maps so the attention needs no extra transposes.
    """

    def __init__(self, channels: int, heads: int, norm_groups: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"{heads} heads do not divide {channels} channels")
        self.heads = heads
        self.norm = nn.GroupNorm(norm_groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def attend(self, x: Tensor) -> Tensor:
        qkv = F.linear(self.norm(x).transpose(1, 2), self.qkv.weight.squeeze(-1), self.qkv.bias)
        out = F.linear(attention(qkv, self.heads), self.proj_out.weight.squeeze(-1), self.proj_out.bias)
        return x + out.transpose(1, 2)


class PlaneAttention(_SelfAttention):
    """Self-attention among the tokens of each plane separately (shared weights)."""

    def forward(self, h: Planes, emb: Tensor | None = None) -> Planes:
        return h.map(lambda x, n: self.attend(x.flatten(2)).reshape(x.shape))


class CrossPlaneAttention(_SelfAttention):
    """Self-attention over the L = H'W' + T W' + T H' tokens of all three planes of a sample."""

    def forward(self, h: Planes, emb: Tensor | None = None) -> Planes:
        return Planes.from_latent(self.attend(h.to_latent()), h.layout)


class OutputHead(nn.Module):
    """GN - SiLU - zero-initialised 3x3 conv of every plane."""

    def __init__(self, in_channels: int, out_channels: int, *, norm_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, in_channels)
        self.conv = zero_module(nn.Conv2d(in_channels, out_channels, 3, padding=1))

    def forward(self, h: Planes, emb: Tensor | None = None) -> Planes:
        return h.map(lambda x, n: self.conv(F.silu(self.norm(x))))


BlockKind = Literal["stem", "down", "downsample", "middle", "up"]


class UNetBlock(nn.Module):
    """A sequence of layers run in order, plus where it sits in the UNet.

    Attributes:
        kind: "stem" (first conv), "down" (a level's residual block on the way down),
            "downsample" (the block halving the planes), "middle", "up" (a block of the way up).
        level: the UNet level the block belongs to (0 = full resolution).
        channels: output channels.
    """

    checkpointing = False  # activation checkpointing (`set_activation_checkpointing`), training only

    def __init__(self, layers: list[nn.Module], *, kind: BlockKind, level: int, channels: int):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.kind, self.level, self.channels = kind, level, channels

    def forward(self, h: Planes, emb: Tensor) -> Planes:
        if self.checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(self._run, h, emb, use_reentrant=False)
        return self._run(h, emb)

    def _run(self, h: Planes, emb: Tensor) -> Planes:
        for layer in self.layers:
            h = layer(h, emb)
        return h


def set_activation_checkpointing(model: nn.Module, on: bool) -> nn.Module:
    """Turn activation checkpointing of every `UNetBlock` of `model` on or off (in place): a block
    in training mode under autograd then keeps only its inputs and recomputes the rest in the
    backward pass; eval and no-grad calls run as before."""
    for module in model.modules():
        if isinstance(module, UNetBlock):
            module.checkpointing = on
    return model
