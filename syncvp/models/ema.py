"""Exponential moving average of a model's weights, kept apart from the raw weights.

    theta_ema <- d theta_ema + (1 - d) theta,   every `every` optimiser steps,

with d = decay, or with the warm-up of the official code (LitEma, docs/method.md §3.4)
d_n = min(decay, (1 + n) / (10 + n)) at the n-th update (n = 1, 2, ...). The paper's setting is
decay 0.9999 every 25 steps with warm-up; docs/method.md §7.11 suggests every step for short runs.
Buffers are copied, not averaged. The EMA copy is a separate module in eval mode without
gradients; the raw model is never modified.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    """An EMA copy of `model`.

    Args:
        model: the trained module (unwrapped from DDP); copied at construction.
        decay: target decay in [0, 1).
        every: update every `every` optimiser steps (>= 1).
        warmup: use the (1 + n) / (10 + n) warm-up.
    """

    def __init__(self, model: nn.Module, *, decay: float, every: int, warmup: bool):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        if every < 1:
            raise ValueError(f"EMA every must be >= 1, got {every}")
        self.decay, self.every, self.warmup = decay, every, warmup
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update will use."""
        n = self.updates + 1
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> bool:
        """Fold `model`'s weights in if `step` (optimiser steps done, >= 1) is a multiple of
        `every`; returns whether it did."""
        if step < 1 or step % self.every:
            return False
        d = self.current_decay()
        ema_params = list(self.module.parameters())
        params = list(model.parameters())
        if len(ema_params) != len(params):
            raise ValueError("the model's parameters no longer match the EMA copy")
        floats = [(e, p) for e, p in zip(ema_params, params) if e.is_floating_point()]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [p.detach() for _, p in floats], 1.0 - d)
        for e, b in zip(self.module.buffers(), model.buffers()):
            e.copy_(b)
        self.updates += 1
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay,
                "every": self.every, "warmup": self.warmup}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved EMA (its settings must match this one's)."""
        for key in ("decay", "every", "warmup"):
            if state[key] != getattr(self, key):
                raise ValueError(f"EMA {key} {state[key]} in the checkpoint differs from the configured "
                                 f"{getattr(self, key)}")
        self.module.load_state_dict(state["module"], strict=True)
        self.updates = int(state["updates"])
