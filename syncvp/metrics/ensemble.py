"""Uncertainty of the N trajectories a model draws per video: spread maps, spread-skill, CRPS.

Every function takes the ensemble as a tensor [N, B, C, T, H, W] (N >= 2 trajectories) and the
truth as [B, C, T, H, W], both already in the modality's physical units (images: 0-255 levels;
fields: K, Pa via the store's `norm_min` / `norm_max`), and a mask [B, 1|C, T, H, W] of the points
that count (ERA5 sea excluded; None = all). With x_i the N members, y the truth, at one point:

    mean      m  = 1/N sum_i x_i
    variance  s2 = 1/(N-1) sum_i (x_i - m)^2                      (unbiased)
    spread map   = sqrt(s2)                                         (std over trajectories, `spread_map`)
    skill        e2 = (m - y)^2                                     (squared error of the ensemble mean)
    CRPS (fair)  = 1/N sum_i |x_i - y| - 1/(2 N (N-1)) sum_{i,j} |x_i - x_j|   (Ferro 2014: unbiased
                   for the CRPS of the distribution the members are drawn from; 0 for a perfect
                   collapsed ensemble, and it equals |m - y| = MAE for N identical members)

`spread_skill` averages per video and lead frame over the valid points (and channels):
V[b, t] = (N+1)/N * mean(s2), E[b, t] = mean(e2). After the mean over videos (or batches), the
**spread-skill ratio** of lead frame t is

    ratio(t) = sqrt(V(t)) / sqrt(E(t))     i.e.  sqrt((N+1)/N * mean s2) / RMSE(ensemble mean)

and over all lead frames sqrt(mean_t V) / sqrt(mean_t E). The factor (N+1)/N makes it 1 in
expectation for a calibrated ensemble of any size (Fortin et al. 2014: for members and truth
drawn from one distribution E[(m - y)^2] = (N+1)/N E[s2]); < 1 means over-confident
(under-dispersed), > 1 under-confident. A collapsed ensemble (identical members) has ratio 0.
N = 1 has no spread: every function here raises `ValueError` (the evaluation skips these
metrics for single-trajectory settings, and lists them as skipped when `evaluate.trajectories` < 2).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(members: Tensor, truth: Tensor | None = None) -> None:
    if members.ndim != 6:
        raise ValueError(f"an ensemble must be [N, B, C, T, H, W], got {tuple(members.shape)}")
    if members.shape[0] < 2:
        raise ValueError(f"an ensemble needs N >= 2 trajectories for a spread, got N = {members.shape[0]}")
    if truth is not None and tuple(truth.shape) != tuple(members.shape[1:]):
        raise ValueError(f"truth {tuple(truth.shape)} does not match the members' {tuple(members.shape[1:])}")


def _mean_valid(x: Tensor, valid: Tensor | None) -> Tensor:
    """[B, C, T, H, W] -> [B, T]: the mean over C, H, W of the valid points (an error for a frame
    with none)."""
    if valid is None:
        return x.mean(dim=(1, 3, 4))
    mask = valid.to(torch.float64).expand_as(x)
    count = mask.sum(dim=(1, 3, 4))
    if (count == 0).any():
        raise ValueError("an ensemble metric got a frame without any valid point")
    return torch.where(mask > 0, x, torch.zeros_like(x)).sum(dim=(1, 3, 4)) / count


def spread_map(members: Tensor) -> Tensor:
    """Std over trajectories (unbiased, 1/(N-1)) per point: [N, B, C, T, H, W] -> [B, C, T, H, W]."""
    _check(members)
    return members.to(torch.float64).std(dim=0, unbiased=True)


def spread_skill(members: Tensor, truth: Tensor, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(V, E), each [B, T]: the corrected mean variance (N+1)/N * mean(s2) and the mean squared error
    of the ensemble mean, over the valid points of each video and lead frame (module docstring)."""
    _check(members, truth)
    x, y = members.to(torch.float64), truth.to(torch.float64)
    n = x.shape[0]
    var = x.var(dim=0, unbiased=True) * (n + 1) / n
    err = (x.mean(dim=0) - y) ** 2
    return _mean_valid(var, valid), _mean_valid(err, valid)


def spread_skill_ratio(var: Tensor | float, mse: Tensor | float) -> Tensor:
    """sqrt(V) / sqrt(E) from `spread_skill`'s outputs (already averaged as wanted); inf when E = 0 < V,
    nan when both are 0."""
    return torch.sqrt(torch.as_tensor(var, dtype=torch.float64)) / torch.sqrt(torch.as_tensor(mse, dtype=torch.float64))


def crps(members: Tensor, truth: Tensor, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(fair CRPS, L1 of the ensemble mean), each [B, T] averaged over valid points (module docstring)."""
    _check(members, truth)
    x, y = members.to(torch.float64), truth.to(torch.float64)
    n = x.shape[0]
    skill = (x - y).abs().mean(dim=0)
    rank = torch.arange(1, n + 1, dtype=torch.float64).reshape(n, *([1] * (x.ndim - 1)))
    pairs = 2 * ((2 * rank - n - 1) * x.sort(dim=0).values).sum(dim=0)  # = sum_{i,j} |x_i - x_j|
    score = skill - pairs / (2 * n * (n - 1))
    return _mean_valid(score, valid), _mean_valid((x.mean(dim=0) - y).abs(), valid)
