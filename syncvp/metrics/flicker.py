"""Temporal flicker of a predicted modality on static background (the metric `flicker`).

A depth map drawn frame by frame (Depth-Anything-V2 labels, paper supplementary §1.2) or
sampled by a model can change where nothing in the scene moves. `flicker` measures that change
on the pixels the other modality of a pair shows as static:

1. the reference: the ground truth of the pair's first modality a (RGB), uint8 [B, Ca, T, H, W];
   a pixel is static between frames k and k+1 when every channel of a changes by at most
   `STATIC_LEVELS` levels (of 255; 2 absorbs rounding and sensor noise);
2. the scored video: modality b (depth), uint8 [B, Cb, T, H, W]: the mean absolute change
   |b(k+1) - b(k)| over its channels and the static pixels of that pair of frames, in 0-255 levels.

Per video the mean over its frame pairs (NaN when no pixel is static anywhere); per frame the
value of the pair ending at that frame, NaN for the first frame (no predecessor in the scored
frames). Lower is steadier; the ground truth's own value is the reference (about 0 for exact
depth, larger for per-frame pseudo-depth labels). A prediction that stands still scores 0 too, so
read it next to the accuracy metrics.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from syncvp.metrics.alignment import nanmean

STATIC_LEVELS = 2


def static_mask(reference: Tensor, levels: int = STATIC_LEVELS) -> Tensor:
    """uint8 [B, C, T, H, W] -> bool [B, T - 1, H, W]: every channel changes by <= `levels` from frame k to k+1."""
    if reference.dtype != torch.uint8 or reference.ndim != 5:
        raise ValueError(f"static_mask needs uint8 [B, C, T, H, W], got {reference.dtype} {tuple(reference.shape)}")
    change = (reference[:, :, 1:].int() - reference[:, :, :-1].int()).abs()
    return change.amax(dim=1) <= levels


def flicker(reference: Tensor, video: Tensor, levels: int = STATIC_LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """(per video [B], per frame [B, T]) float64: the mean |video(k+1) - video(k)| on the pixels
    `reference` shows static (module docstring); frame 1 and frames without static pixels are NaN."""
    if video.dtype != torch.uint8 or video.ndim != 5:
        raise ValueError(f"flicker needs uint8 [B, C, T, H, W] videos, got {video.dtype} {tuple(video.shape)}")
    if reference.shape[0] != video.shape[0] or reference.shape[2:] != video.shape[2:]:
        raise ValueError(
            f"flicker needs videos of one batch, length and size, got {tuple(reference.shape)} and {tuple(video.shape)}"
        )
    static = static_mask(reference, levels).double()  # [B, T-1, H, W]
    change = (video[:, :, 1:].double() - video[:, :, :-1].double()).abs().mean(dim=1)  # [B, T-1, H, W]
    count = static.sum(dim=(2, 3))
    per_pair = (change * static).sum(dim=(2, 3)) / count.clamp(min=1)
    per_pair = torch.where(count > 0, per_pair, torch.full_like(per_pair, float("nan"))).numpy()
    frame = np.concatenate([np.full((video.shape[0], 1), np.nan), per_pair], axis=1)
    return nanmean(per_pair, axis=1), frame
