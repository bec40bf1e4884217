"""Tiny diffusion networks for tests (a few thousand parameters, planes of a few pixels)."""

from __future__ import annotations

import torch
from torch import nn

from syncvp.models.triplane import TriplaneShape
from syncvp.models.unet import TriplaneUNet

# non-square planes and an odd number of frames on purpose
FUTURE = TriplaneShape(channels=3, height=4, width=6, frames=3)
CONTEXT = TriplaneShape(channels=2, height=4, width=6, frames=2)
TINY = dict(model_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(1, 2), num_heads=2,
            norm_groups=4, dropout=0.0)


def tiny_unet(future: TriplaneShape = FUTURE, context: TriplaneShape | None = CONTEXT, seed: int = 0, **changes) -> TriplaneUNet:
    torch.manual_seed(seed)
    return TriplaneUNet(shape=future, context=context, **{**TINY, **changes})


def perturb(module: nn.Module, seed: int, scale: float = 0.1) -> nn.Module:
    """Add noise to every parameter, so zero-initialised layers stop hiding paths."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return module


def inputs(future: TriplaneShape = FUTURE, context: TriplaneShape | None = CONTEXT, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, future.channels, future.length, generator=g)
    c = None if context is None else torch.randn(batch, context.channels, context.length, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    return x, t, c

