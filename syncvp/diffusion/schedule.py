"""Noise schedules: named beta schedules as pure functions and the precomputed tables.

Notation (Ho et al. 2020): beta_t for t = 0..T-1, alpha_t = 1 - beta_t,
alpha_bar_t = prod_{s<=t} alpha_s, alpha_bar_{-1} = 1. Schedules may be added here but an
existing name must never change its values (checkpoints depend on them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import torch
from torch import Tensor

ScheduleName = Literal["linear_sqrt", "linear", "cosine"]


# --------------------------------------------------------------------------------------------
# Named beta schedules


def linear_sqrt_betas(timesteps: int, start: float, end: float) -> np.ndarray:
    """beta_t = (sqrt(start) + t / (T - 1) * (sqrt(end) - sqrt(start)))^2: LDM's "linear"
    schedule, the paper's (start 0.0015, end 0.0195, T 1000)."""
    return np.linspace(math.sqrt(start), math.sqrt(end), timesteps, dtype=np.float64) ** 2


def linear_betas(timesteps: int, start: float, end: float) -> np.ndarray:
    """beta_t = start + t / (T - 1) * (end - start) (Ho et al. 2020 use 1e-4 -> 0.02)."""
    return np.linspace(start, end, timesteps, dtype=np.float64)


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal 2021: alpha_bar(u) = cos^2((u + s) / (1 + s) * pi / 2) / alpha_bar(0) at
    u = t / T, beta_t = min(1 - alpha_bar((t + 1) / T) / alpha_bar(t / T), max_beta)."""
    u = np.arange(timesteps + 1, dtype=np.float64) / timesteps
    alpha_bar = np.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    return np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)


def named_betas(name: ScheduleName, timesteps: int, *, start: float, end: float) -> np.ndarray:
    """The betas [T] (float64) of a named schedule; `start`/`end` apply to the linear ones."""
    if name == "linear_sqrt":
        return linear_sqrt_betas(timesteps, start, end)
    if name == "linear":
        return linear_betas(timesteps, start, end)
    if name == "cosine":
        return cosine_betas(timesteps)
    raise ValueError(f"unknown beta schedule {name!r} (known: linear_sqrt, linear, cosine)")


# --------------------------------------------------------------------------------------------
# Precomputed tables


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """Every per-timestep quantity of the process, float64 tensors of shape [T].

    Attributes:
        betas: beta_t.
        alphas_cumprod: alpha_bar_t.
        alphas_cumprod_prev: alpha_bar_{t-1} (1 at t = 0).
        sqrt_alphas_cumprod: sqrt(alpha_bar_t).
        sqrt_one_minus_alphas_cumprod: sqrt(1 - alpha_bar_t).
        sqrt_recip_alphas_cumprod: 1 / sqrt(alpha_bar_t).
        sqrt_recipm1_alphas_cumprod: sqrt(1 / alpha_bar_t - 1).
        posterior_variance: beta~_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), the
            variance of q(x_{t-1} | x_t, x_0).
        posterior_log_variance_clipped: log beta~_t, with beta~_0 (= 0) replaced by beta~_1.
        posterior_mean_coef1: beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t) (multiplies x_0).
        posterior_mean_coef2: (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t) (multiplies x_t).
    """

    betas: Tensor
    alphas_cumprod: Tensor
    alphas_cumprod_prev: Tensor
    sqrt_alphas_cumprod: Tensor
    sqrt_one_minus_alphas_cumprod: Tensor
    sqrt_recip_alphas_cumprod: Tensor
    sqrt_recipm1_alphas_cumprod: Tensor
    posterior_variance: Tensor
    posterior_log_variance_clipped: Tensor
    posterior_mean_coef1: Tensor
    posterior_mean_coef2: Tensor

    @classmethod
    def from_betas(cls, betas: np.ndarray | Tensor) -> "NoiseSchedule":
        """Precompute every table from betas [T] in (0, 1)."""
        b = np.asarray(betas, dtype=np.float64)
        if b.ndim != 1 or len(b) < 2 or not ((b > 0) & (b < 1)).all():
            raise ValueError(f"betas must be a 1-D array of >= 2 values in (0, 1), got shape {b.shape}")
        alphas = 1.0 - b
        abar = np.cumprod(alphas)
        abar_prev = np.append(1.0, abar[:-1])
        post_var = b * (1.0 - abar_prev) / (1.0 - abar)
        tables = dict(
            betas=b,
            alphas_cumprod=abar,
            alphas_cumprod_prev=abar_prev,
            sqrt_alphas_cumprod=np.sqrt(abar),
            sqrt_one_minus_alphas_cumprod=np.sqrt(1.0 - abar),
            sqrt_recip_alphas_cumprod=np.sqrt(1.0 / abar),
            sqrt_recipm1_alphas_cumprod=np.sqrt(1.0 / abar - 1.0),
            posterior_variance=post_var,
            posterior_log_variance_clipped=np.log(np.append(post_var[1], post_var[1:])),
            posterior_mean_coef1=b * np.sqrt(abar_prev) / (1.0 - abar),
            posterior_mean_coef2=(1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar),
        )
        return cls(**{k: torch.from_numpy(v) for k, v in tables.items()})

    @classmethod
    def named(cls, name: ScheduleName, timesteps: int, *, start: float, end: float) -> "NoiseSchedule":
        return cls.from_betas(named_betas(name, timesteps, start=start, end=end))

    @property
    def num_timesteps(self) -> int:
        return len(self.betas)

    def to(self, device: torch.device | str) -> "NoiseSchedule":
        """The same tables on `device` (still float64 where the device supports it)."""
        return NoiseSchedule(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def alpha_bar(self, t: int) -> float:
        """alpha_bar_t as a Python float, with alpha_bar_{-1} = 1 (DDIM's last step)."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])


def extract(table: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """table[t] shaped [B, 1, ..., 1] to broadcast against `like` [B, ...], in like's dtype and device.

    Args:
        table: a [T] schedule table.
        t: [B] integer timesteps.
        like: the tensor the result multiplies.
    """
    if t.ndim != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"timesteps must have shape [{like.shape[0]}], got {tuple(t.shape)}")
    values = table.to(like.device)[t.to(like.device)]
    return values.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))
