"""Optimizer and learning-rate schedule factories."""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

IMPLEMENTATION_KEYS = ("foreach", "fused")


def implementation(params: list[torch.Tensor]) -> dict[str, bool]:
    """How AdamW updates `params`: fused kernels when every parameter is a floating-point CUDA
    tensor, else torch's per-tensor loop.

    - CUDA, fused: a few kernels for the whole update, where torch's default there (foreach) takes
      about ten launches per chunk of parameters; its results differ from the loop's in the last
      bit.
    - elsewhere, the loop (torch's CPU default): on 2 CPU cores at the paper configuration
      (123.4 M parameters; `python -m benchmarks.optimizer`) the foreach path was slower (its
      lists of temporaries fault in fresh pages), and fused kernels were about 3x faster but not
      bit-identical, which would change every recorded CPU run for about 0.2 s of a 4.4 s step.
    """
    if params and all(p.device.type == "cuda" and p.is_floating_point() for p in params):
        return {"foreach": False, "fused": True}
    return {"foreach": False, "fused": False}


def adamw(
    parameters: Iterable[torch.Tensor], *, lr: float, betas: tuple[float, float], weight_decay: float
) -> torch.optim.AdamW:
    """AdamW over the parameters that require gradients (`implementation` picks the kernels)."""
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters")
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, **implementation(params))


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """`optimizer.load_state_dict(state)`, keeping the optimizer's own kernel choice.

    A saved param group carries the `foreach` / `fused` flags of the run that wrote it, and torch
    restores them with the hyperparameters: a checkpoint written on CPU would otherwise take
    fused kernels away from a resumed CUDA run, and one written before `implementation` existed
    (flags None) would bring back the per-tensor loop. Fused kernels also want each parameter's
    step count beside the parameter (torch leaves a loop-written count where it was loaded), so
    it is moved there.
    """
    chosen = [{k: g[k] for k in IMPLEMENTATION_KEYS if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, flags in zip(optimizer.param_groups, chosen):
        group.update(flags)
        if not group.get("fused"):
            continue
        for p in group["params"]:
            step = optimizer.state.get(p, {}).get("step")
            if torch.is_tensor(step):
                optimizer.state[p]["step"] = step.to(device=p.device, dtype=torch.float32)


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
