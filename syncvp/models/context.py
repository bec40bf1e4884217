"""How the observed context frames become the conditioning latent of a diffusion model.

Two encoders (`diffusion.context_encoder`):

- "context" (the paper's): the `context_frames`-frame context autoencoder encodes the context
  frames into a latent space of its own; the UNet lays its planes onto the target's
  (`syncvp.models.triplane.align_condition`).
- "future": the context frames, the last one repeated up to `future_frames` frames
  (`hold_last`), go through the future autoencoder. The conditioning is then the latent of "the
  scene stands still after the last observed frame", in the target's own latent space and
  geometry: plane for plane and channel for channel it means what the target's does, so the
  network only has to learn how the scene moves on from it, and the frame-to-frame change
  between the context frames is kept in the time rows of the yt / xt planes.

With "future", `motion` (`diffusion.context_motion`) appends C' more channels: the latent change
E(last frame, held still) - E(previous frame, held still). The held context keeps little of the
first frame (a video autoencoder of this size smooths a one-frame change: its latent moves about
a quarter as far as between the two still clips), so without it the network sees almost no
velocity and can only learn to blur; with it, the direction and speed of the motion are an input.
The first C' channels stay the held-context latent, the base of a residual target
(`syncvp.diffusion.target`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from syncvp.models.autoencoder import TriplaneAutoencoder
from syncvp.models.triplane import TriplaneShape

ContextEncoder = Literal["context", "future"]
CONTEXT_ENCODERS = ("context", "future")


def hold_last(context: Tensor, frames: int) -> Tensor:
    """[B, C, Tc, H, W] -> [B, C, frames, H, W]: the context frames followed by copies of the last
    one; when frames <= Tc, the last `frames` context frames."""
    if context.ndim != 5 or context.shape[2] < 1:
        raise ValueError(f"context must be [B, C, T >= 1, H, W], got {tuple(context.shape)}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    t = context.shape[2]
    if frames <= t:
        return context[:, :, t - frames:]
    return torch.cat([context, context[:, :, -1:].expand(-1, -1, frames - t, -1, -1)], dim=2)


def context_latent_shape(encoder: ContextEncoder, context_ae: TriplaneAutoencoder | None,
                         future_ae: TriplaneAutoencoder, motion: bool = False) -> TriplaneShape:
    """The geometry of the conditioning latent under `encoder` (2C' channels with `motion`)."""
    if motion and encoder != "future":
        raise ValueError("the motion channels need context_encoder 'future'")
    if encoder == "future":
        shape = future_ae.latent_shape
        return shape.with_channels(2 * shape.channels) if motion else shape
    if encoder == "context":
        if context_ae is None:
            raise ValueError("context_encoder 'context' needs the context autoencoder")
        return context_ae.latent_shape
    raise ValueError(f"unknown context encoder {encoder!r} (known: {', '.join(CONTEXT_ENCODERS)})")


def encode_context(context: Tensor, encoder: ContextEncoder, context_ae: TriplaneAutoencoder | None,
                   future_ae: TriplaneAutoencoder, motion: bool = False) -> Tensor:
    """The conditioning latent [B, C', L] of context frames [B, C, Tc, H, W] in [-1, 1].

    "context": context_ae(last `context_ae.spec.frames` frames); "future":
    future_ae(hold_last(context, future frames)), with `motion` followed along channels by
    future_ae(still(last frame)) - future_ae(still(previous frame)) ([B, 2C', L]).
    """
    context_latent_shape(encoder, context_ae, future_ae, motion)  # validates
    if encoder == "future":
        frames = future_ae.spec.frames
        held = future_ae.encode(hold_last(context, frames))
        if not motion:
            return held
        if context.shape[2] < 2:
            raise ValueError(f"the motion channels need >= 2 context frames, got {context.shape[2]}")
        stills = torch.cat([context[:, :, -1:], context[:, :, -2:-1]]).expand(-1, -1, frames, -1, -1)
        last, previous = future_ae.encode(stills).chunk(2)
        return torch.cat([held, last - previous], dim=1)
    return context_ae.encode(context[:, :, -context_ae.spec.frames:])
