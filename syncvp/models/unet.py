"""The triplane UNet (PVDM's UNet on the three planes of a latent; stage 1, docs/method.md §3.3).

Every 2-D layer runs on each plane with shared weights (planes of equal shape batched together);
after every block but the stem, a cross-plane 1-D self-attention over the tokens of all three
planes mixes them. The context latent (from the context autoencoder) is laid plane by plane onto
the future latent's geometry (`align_condition`) and concatenated along channels.

Layout for channel_mult [1, 2], one residual block (the paper's; widths 256 / 512):
    in0 stem conv | in1 Res+Attn2D | in2 Res(down) | in3 Res+Attn2D | mid Res+Attn2D+Res
    | out0 Res+Attn2D | out1 Res+Attn2D+Res(up) | out2 Res+Attn2D | out3 Res+Attn2D | head
with the cross-plane attention closing every block after in0. Skips are stored after each input
block and concatenated on the way up (the forward is a plain walk over the block lists).

Odd plane sizes (e.g. 5 or 1 frames): downsampling averages the in-bounds cells of each 2x2
window (ceil), upsampling doubles, and the result is cropped to the skip's size. For even sizes
this is exactly PVDM's layout; the official code instead floors and zero-pads on the way up,
which cannot handle a single frame.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from syncvp.models.triplane import TriplaneShape, align_condition
from syncvp.models.unet_blocks import (
    CrossPlaneAttention, OutputHead, PlaneAttention, PlaneConv, PlaneLayout, Planes, ResBlock, TimestepEmbedding,
    UNetBlock, concat_skip,
)


class TriplaneUNet(nn.Module):
    """eps-network on triplane latents: (x_t [B, C', L], t [B], context [B, C_c, L_c]) -> [B, C_out, L].

    Args:
        shape: geometry of the denoised (future) latent.
        context: geometry of the conditioning (context) latent, or None for an unconditional model.
        out_channels: output channels (default: shape.channels).
        model_channels, channel_mult, num_res_blocks, attention_resolutions, num_heads,
            norm_groups, dropout: see `syncvp.config.diffusion.UNetConfig`.
        condition_layout: "per_plane" or "official" (see `align_condition`).
    """

    def __init__(self, *, shape: TriplaneShape, context: TriplaneShape | None, model_channels: int,
                 channel_mult: Sequence[int], num_res_blocks: int, attention_resolutions: Sequence[int],
                 num_heads: int, norm_groups: int, dropout: float = 0.0,
                 condition_layout: Literal["per_plane", "official"] = "per_plane", out_channels: int | None = None):
        super().__init__()
        self.shape, self.context, self.condition_layout = shape, context, condition_layout
        self.layout = PlaneLayout.of(shape)
        self.model_channels = model_channels
        make = _Layers(4 * model_channels, num_heads, norm_groups, dropout)
        self.time_embed = TimestepEmbedding(model_channels, make.emb_dim)
        in_channels = shape.channels + (context.channels if context is not None else 0)
        widths = [model_channels * m for m in channel_mult]
        attend = [2 ** level in attention_resolutions for level in range(len(widths))]
        blocks, skip_channels = _input_blocks(make, in_channels, widths, num_res_blocks, attend)
        self.input_blocks = nn.ModuleList(blocks)
        ch = widths[-1]
        self.middle_block = UNetBlock([make.res(ch, ch), make.plane(ch), make.res(ch, ch), make.cross_plane(ch)],
                                      kind="middle", level=len(widths) - 1, channels=ch)
        self.output_blocks = nn.ModuleList(_output_blocks(make, widths, num_res_blocks, attend, skip_channels))
        self.head = OutputHead(model_channels * channel_mult[0], out_channels or shape.channels, norm_groups=norm_groups)

    @property
    def blocks(self) -> list[UNetBlock]:
        """Every block in walking order: input blocks, the middle block, output blocks."""
        return [*self.input_blocks, self.middle_block, *self.output_blocks]

    def enter(self, x: Tensor, context: Tensor | None) -> Planes:
        """The input planes: x_t [B, C', L] with the aligned context [B, C_c, L_c] concatenated
        along channels (zeros when `context` is None: "no conditioning")."""
        if tuple(x.shape[1:]) != (self.shape.channels, self.shape.length):
            raise ValueError(f"x_t has shape {tuple(x.shape)}, "
                             f"expected [B, {self.shape.channels}, {self.shape.length}]")
        if self.context is not None:
            if context is None:
                cond = x.new_zeros(x.shape[0], self.context.channels, self.shape.length)
            else:
                if tuple(context.shape[1:]) != (self.context.channels, self.context.length):
                    raise ValueError(f"context has shape {tuple(context.shape)}, expected "
                                     f"[B, {self.context.channels}, {self.context.length}]")
                cond = align_condition(context.to(x.dtype), self.context, self.shape, self.condition_layout)
            x = torch.cat([x, cond], dim=1)
        elif context is not None:
            raise ValueError("this UNet has no context input, but a context was given")
        return Planes.from_latent(x, self.layout)

    def exit(self, h: Planes) -> Tensor:
        """The output head, flattened back to [B, C_out, L]."""
        return self.head(h).to_latent()

    def forward(self, x: Tensor, t: Tensor, context: Tensor | None = None) -> Tensor:
        """eps^(x_t, t, context): [B, C', L], [B], [B, C_c, L_c] -> [B, C_out, L]."""
        emb = self.time_embed(t)
        h = self.enter(x, context)
        skips = []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(concat_skip(h, skips.pop()), emb)
        return self.exit(h)


class _Layers:
    """Makers of the UNet's layers with the settings they share."""

    def __init__(self, emb_dim: int, heads: int, norm_groups: int, dropout: float):
        self.emb_dim, self.heads, self.norm_groups, self.dropout = emb_dim, heads, norm_groups, dropout

    def res(self, cin: int, cout: int, resample: Literal["up", "down"] | None = None) -> ResBlock:
        return ResBlock(cin, cout, self.emb_dim, norm_groups=self.norm_groups, dropout=self.dropout, resample=resample)

    def plane(self, ch: int) -> PlaneAttention:
        return PlaneAttention(ch, self.heads, self.norm_groups)

    def cross_plane(self, ch: int) -> CrossPlaneAttention:
        return CrossPlaneAttention(ch, self.heads, self.norm_groups)


def _input_blocks(make: _Layers, in_channels: int, widths: Sequence[int], num_res_blocks: int,
                  attend: Sequence[bool]) -> tuple[list[UNetBlock], list[int]]:
    """Stem, then per level: residual blocks (+ plane attention), then a downsampling block
    (all but the last level); each followed by the cross-plane attention. Returns the blocks and the
    channels of the skips they leave."""
    blocks = [UNetBlock([PlaneConv(in_channels, widths[0])], kind="stem", level=0, channels=widths[0])]
    skips, ch = [widths[0]], widths[0]
    for level, width in enumerate(widths):
        for _ in range(num_res_blocks):
            layers = [make.res(ch, width), *([make.plane(width)] if attend[level] else []), make.cross_plane(width)]
            blocks.append(UNetBlock(layers, kind="down", level=level, channels=width))
            skips.append(ch := width)
        if level != len(widths) - 1:
            blocks.append(UNetBlock([make.res(ch, ch, "down"), make.cross_plane(ch)], kind="downsample", level=level,
                                    channels=ch))
            skips.append(ch)
    return blocks, skips


def _output_blocks(make: _Layers, widths: Sequence[int], num_res_blocks: int, attend: Sequence[bool],
                   skips: list[int]) -> list[UNetBlock]:
    """Per level, deepest first: num_res_blocks + 1 residual blocks on [h, skip] (+ plane
    attention), the last one upsampling (all but level 0); each followed by the cross-plane attention."""
    blocks, ch = [], widths[-1]
    for level in reversed(range(len(widths))):
        width = widths[level]
        for i in range(num_res_blocks + 1):
            layers = [make.res(ch + skips.pop(), width)] + ([make.plane(width)] if attend[level] else [])
            if level and i == num_res_blocks:
                layers.append(make.res(width, width, "up"))
            blocks.append(UNetBlock([*layers, make.cross_plane(width)], kind="up", level=level, channels=width))
            ch = width
    return blocks


def count_parameters(module: nn.Module) -> int:
    """Number of distinct parameters (shared ones counted once)."""
    return sum(p.numel() for p in module.parameters())
