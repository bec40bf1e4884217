"""Image videos for evaluation: quantisation to uint8 and the min-max scopes of SSIM / L2.

Videos are [B, C, T, H, W]. Image metrics score uint8 frames, as SyncVP does:

- predictions (float, model space [-1, 1]) are clamped and quantised by `quantise`:
  "truncate" is the paper's `((x + 1) * 127.5).type(torch.uint8)`, "round" rounds to nearest;
  uint8 input (e.g. copies of GT frames) passes through unchanged;
- `snap` gives the model-space values of those uint8 frames (`k / 127.5 - 1`, a rollout's fed-back
  context); never truncate them again: for 63 of the 256 levels float32 `(k / 127.5 - 1 + 1) * 127.5`
  is just below k, so scoring keeps the decoder's floats and quantises them once;
- ground truth is always converted with rounding (`ground_truth`): GT comes from uint8 frames
  (`x / 127.5 - 1`), and truncation would turn some values into value - 1 through float error.

`normalise` maps uint8 to [0, 1] floats with one of three scopes:

- "batch": the paper's `(x - min) / (max - min)` with the min and max of the whole batch tensor
  (so a video's score depends on the other videos of its batch);
- "video": the same with each video's own min and max;
- "range": the fixed range, x / 255 (no data-dependent rescaling).

A constant tensor (max == min, where the paper divides by zero) maps to 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from syncvp.io.model_space import model_to_image

Rounding = Literal["truncate", "round"]
Scope = Literal["batch", "video", "range"]


@dataclass(frozen=True)
class Quantisation:
    """How decoded predictions of an image modality become uint8 frames, in scoring and in a rollout
    (where these frames are the context of the next chunk).

    Attributes:
        rounding: "truncate" (the paper's `.type(torch.uint8)` of `(1 + x) * 127.5`) or "round".
        network_channels: keep the decoder's own channels (3 for a one-channel modality run through
            a 3-channel network, `autoencoder.gray_to_rgb`, as the official depth checkpoints are);
            False: the decoder output averaged back to the modality's channels.
    """

    rounding: Rounding = "round"
    network_channels: bool = False

    def __post_init__(self) -> None:
        if self.rounding not in ("truncate", "round"):
            raise ValueError(f"Quantisation.rounding: expected truncate or round, got {self.rounding!r}")


def quantise(x: Tensor, rounding: Rounding) -> Tensor:
    """Model-space [-1, 1] floats -> uint8 ((clamp(x) + 1) * 127.5, truncated or rounded); uint8 unchanged."""
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise TypeError(f"quantise needs float model-space values or uint8, got {x.dtype}")
    return torch.from_numpy(model_to_image(x.detach().float().cpu().numpy(), rounding))


def snap(x: Tensor, rounding: Rounding) -> Tensor:
    """Model-space floats -> the model-space values of their uint8 frames, `k / 127.5 - 1` in float32
    with k = `quantise(x, rounding)` (computed where x lies), as a frame cast to uint8 and read back
    as a context frame is."""
    v = (x.clamp(-1, 1) + 1) * 127.5
    k = torch.floor(v) if rounding == "truncate" else torch.round(v)
    return (k / 127.5 - 1).to(x.dtype)


def ground_truth(x: Tensor) -> Tensor:
    """GT frames as uint8: uint8 unchanged, model-space floats rounded back (exact for x / 127.5 - 1)."""
    return quantise(x, "round")


def normalise(x: Tensor, scope: Scope) -> Tensor:
    """uint8 [B, C, T, H, W] -> float64 in [0, 1] by min-max over `scope` (see the module doc)."""
    if x.dtype != torch.uint8 or x.ndim != 5:
        raise ValueError(f"normalise needs uint8 [B, C, T, H, W], got {x.dtype} {tuple(x.shape)}")
    v = x.double()
    if scope == "range":
        return v / 255.0
    if scope == "batch":
        lo, hi = v.min(), v.max()
    elif scope == "video":
        lo = v.amin(dim=(1, 2, 3, 4), keepdim=True)
        hi = v.amax(dim=(1, 2, 3, 4), keepdim=True)
    else:
        raise ValueError(f"unknown normalisation scope {scope!r}; expected batch, video or range")
    span = hi - lo
    return (v - lo) / torch.where(span > 0, span, torch.ones_like(span))


def frames_of(x: Tensor) -> Tensor:
    """[B, C, T, H, W] -> [B * T, C, H, W], frame-major within each video."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)
