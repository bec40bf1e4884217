"""Optimizer and learning-rate schedule factories."""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR


def adamw(
    parameters: Iterable[torch.Tensor], *, lr: float, betas: tuple[float, float], weight_decay: float
) -> torch.optim.AdamW:
    """AdamW over the parameters that require gradients."""
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters")
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def cosine_factor(step: int, total_steps: int, min_ratio: float, warmup_steps: int = 0) -> float:
    """lr(step) / lr: a linear warm-up (step + 1) / W over the first W steps, then
    r + (1 - r) (1 + cos(pi s / S)) / 2 with s = min(step - W, S), S = T - W: 1 right after the
    warm-up, r at step T.

    Without warm-up this is the closed form of `CosineAnnealingLR(T_max=T, eta_min=r * lr)`
    (the paper: T = max_iter, r = 0.01, W = 0).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(step - warmup_steps, span) / span
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_schedule(
    optimizer: torch.optim.Optimizer, *, total_steps: int, min_ratio: float, warmup_steps: int = 0
) -> LambdaLR:
    """Warm-up then cosine decay over `total_steps` optimizer steps, stepped once per optimizer step."""
    return LambdaLR(optimizer, lambda step: cosine_factor(step, total_steps, min_ratio, warmup_steps))
