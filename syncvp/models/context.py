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

What "held" means is the extrapolation (`diffusion.context_extrapolation`, with "future"):

- "hold": the context frames, then the last one repeated (`hold_last`): the scene stands still.
- "flow": the last frame carried on along the optical flow between the last two context frames,
  one frame per future frame (`flow_extrapolate`): the scene keeps moving as it last moved. The
  clip covers the future frames themselves, so a residual target is the change from "everything
  keeps its last velocity" (Farneback flow per modality, on the frames quantised to 8 bits; each
  future frame k is the last frame warped back by k times the flow). With `blur` b > 0, frame k
  is also blurred by a Gaussian of sigma b k pixels: the expected frame when the velocity is known
  less well the further ahead one looks, so the extrapolation is closer to the mean future that
  the metrics reward (`diffusion.extrapolation_blur`; README "How the default model predicts").
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from syncvp.models.autoencoder import TriplaneAutoencoder
from syncvp.models.triplane import TriplaneShape

ContextEncoder = Literal["context", "future"]
CONTEXT_ENCODERS = ("context", "future")
Extrapolation = Literal["hold", "flow"]
EXTRAPOLATIONS = ("hold", "flow")


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


def _gray8(frame: np.ndarray) -> np.ndarray:
    """[C, H, W] in [-1, 1] -> [H, W] uint8: luminance of 3 channels, else the channel mean
    (NaN as 0)."""
    x = np.nan_to_num(frame.astype(np.float32))
    g = x[0] * 0.299 + x[1] * 0.587 + x[2] * 0.114 if x.shape[0] == 3 else x.mean(axis=0)
    return np.clip(np.rint((g + 1.0) * 127.5), 0, 255).astype(np.uint8)


def optical_flow(previous: Tensor, last: Tensor) -> Tensor:
    """Backward optical flow [B, 2, H, W] (x, y in pixels) of frames [B, C, H, W] in [-1, 1]:
    at each pixel p of `last`, `last(p) ~ previous(p + flow(p))`.

    Farneback's dense flow (OpenCV) on the frames as 8-bit gray images, with a pyramid deep enough
    that its coarsest level is about 8 pixels (32 px: 2 levels, 128 px: 4) and an 11-pixel window.
    """
    if previous.shape != last.shape or previous.ndim != 4:
        raise ValueError(f"frames must be two [B, C, H, W] of one shape, got {tuple(previous.shape)}, {tuple(last.shape)}")
    levels = max(0, int(np.log2(max(min(last.shape[-2:]), 1) / 8)))
    a, b = previous.detach().float().cpu().numpy(), last.detach().float().cpu().numpy()
    flows = [
        cv2.calcOpticalFlowFarneback(_gray8(lb), _gray8(pb), None, 0.5, levels, 11, 5, 5, 1.1, 0)
        for pb, lb in zip(a, b)
    ]
    return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).to(last.device)


def warp(frame: Tensor, flow: Tensor) -> Tensor:
    """Backward warp: out(p) = frame(p + flow(p)), bilinear, edges repeated ([B, C, H, W], flow
    [B, 2, H, W] in pixels)."""
    _, _, h, w = frame.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=flow.dtype, device=flow.device),
        torch.arange(w, dtype=flow.dtype, device=flow.device),
        indexing="ij",
    )
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1).to(frame.dtype)
    return F.grid_sample(frame, grid, mode="bilinear", padding_mode="border", align_corners=True)


def gaussian_blur(frame: Tensor, sigma: float) -> Tensor:
    """[B, C, H, W] blurred by a separable Gaussian of `sigma` pixels (edges repeated; 0: unchanged)."""
    if sigma <= 0:
        return frame
    radius = max(1, int(np.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=frame.dtype, device=frame.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    b, c, h, w = frame.shape
    out = frame.reshape(b * c, 1, h, w)
    out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return out.reshape(b, c, h, w)


def flow_extrapolate(context: Tensor, frames: int, blur: float = 0.0) -> Tensor:
    """[B, C, Tc >= 2, H, W] -> [B, C, frames, H, W]: future frame k (1..frames) is the last
    context frame warped back by k times its optical flow from the previous one (constant velocity
    per pixel, `optical_flow`), then blurred by a Gaussian of sigma `blur` * k pixels."""
    if context.ndim != 5 or context.shape[2] < 2:
        raise ValueError(f"flow extrapolation needs context [B, C, T >= 2, H, W], got {tuple(context.shape)}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    last = context[:, :, -1]
    flow = optical_flow(context[:, :, -2], last).to(last.dtype)
    if blur < 0:
        raise ValueError(f"blur must be >= 0, got {blur}")
    return torch.stack([gaussian_blur(warp(last, k * flow), blur * k) for k in range(1, frames + 1)], dim=2)


def conditioning_clip(context: Tensor, frames: int, extrapolation: Extrapolation = "hold", blur: float = 0.0) -> Tensor:
    """The `frames`-frame clip the future autoencoder encodes as the conditioning: `hold_last` or
    `flow_extrapolate` (with its `blur`)."""
    if extrapolation == "hold":
        return hold_last(context, frames)
    if extrapolation == "flow":
        return flow_extrapolate(context, frames, blur)
    raise ValueError(f"unknown extrapolation {extrapolation!r} (known: {', '.join(EXTRAPOLATIONS)})")


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
                   future_ae: TriplaneAutoencoder, motion: bool = False,
                   extrapolation: Extrapolation = "hold", blur: float = 0.0) -> Tensor:
    """The conditioning latent [B, C', L] of context frames [B, C, Tc, H, W] in [-1, 1].

    "context": context_ae(last `context_ae.spec.frames` frames); "future":
    future_ae(conditioning_clip(context, future frames, extrapolation, blur)), with `motion` followed
    along channels by future_ae(still(last frame)) - future_ae(still(previous frame)) ([B, 2C', L]).
    """
    context_latent_shape(encoder, context_ae, future_ae, motion)  # validates
    if extrapolation != "hold" and encoder != "future":
        raise ValueError(f"extrapolation {extrapolation!r} needs context_encoder 'future'")
    if encoder == "future":
        frames = future_ae.spec.frames
        held = future_ae.encode(conditioning_clip(context, frames, extrapolation, blur))
        if not motion:
            return held
        if context.shape[2] < 2:
            raise ValueError(f"the motion channels need >= 2 context frames, got {context.shape[2]}")
        stills = torch.cat([context[:, :, -1:], context[:, :, -2:-1]]).expand(-1, -1, frames, -1, -1)
        last, previous = future_ae.encode(stills).chunk(2)
        return torch.cat([held, last - previous], dim=1)
    return context_ae.encode(context[:, :, -context_ae.spec.frames:])
