"""Masked L1 in physical units for field modalities (ERA5-Land t2m in K, sp in Pa).

The paper (supplementary 1.4) rescales predictions to the original range and computes the L1
error with missing points (sea) masked out. Both prediction and target arrive in model space
([-1, 1], as `ClipDataset` serves them) and are mapped back with the store's `norm_min` /
`norm_max` (`syncvp.io.model_space.model_to_field`); invalid points contribute nothing:

    L1(video) = sum(valid * |p - g|) / sum(valid)     over C, T, H, W
    L1(frame) = the same over C, H, W of one frame

Predictions are not clamped here (the rollout decides that).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from syncvp.io.model_space import model_to_field


@dataclass(frozen=True)
class FieldSpec:
    """How a field modality maps back to physical units (the store's variable attributes).

    Attributes:
        lo: `norm_min`, the physical value of model-space -1.
        hi: `norm_max`, the physical value of model-space +1.
        units: the physical unit ("K", "Pa").
    """

    lo: float
    hi: float
    units: str


def to_physical(x: Tensor, spec: FieldSpec) -> Tensor:
    """Model-space [-1, 1] -> physical units (float64)."""
    return torch.from_numpy(model_to_field(x.detach().cpu().numpy(), spec.lo, spec.hi).astype(np.float64))


def masked_l1(pred: Tensor, target: Tensor, valid: Tensor | None, spec: FieldSpec) -> tuple[Tensor, Tensor]:
    """Mean |pred - target| in `spec.units` over valid points -> (per video [B], per frame [B, T]).

    Args:
        pred, target: model-space fields [B, C, T, H, W].
        valid: bool/0-1 mask [B, 1, T, H, W] (or [B, C, T, H, W]); None means every point is valid.
    """
    if pred.shape != target.shape or pred.ndim != 5:
        raise ValueError(
            f"masked_l1 needs two [B, C, T, H, W] fields of equal shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    err = (to_physical(pred, spec) - to_physical(target, spec)).abs()
    mask = torch.ones_like(err) if valid is None else valid.to(torch.float64).cpu().expand_as(err)
    err = torch.where(mask > 0, err, torch.zeros_like(err))  # exact: NaN/garbage at invalid points never leaks
    count = mask.sum(dim=(1, 3, 4))
    if (count == 0).any():
        bad = sorted({int(b) for b, _ in (count == 0).nonzero().tolist()})
        raise ValueError(f"masked_l1: videos {bad} have a frame without any valid point")
    total = err.sum(dim=(1, 3, 4))
    return total.sum(dim=1) / count.sum(dim=1), total / count
