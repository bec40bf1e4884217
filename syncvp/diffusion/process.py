"""The Gaussian forward process, its posterior, parameterisation conversions and the training loss.

x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al. 2020, eq. 4). The network
predicts eps (the paper), x_0, or v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0
(Salimans & Ho 2022). Every function takes the `NoiseSchedule` and works on any tensor shape
[B, ...] (here [B, C, L] triplane latents).
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import Tensor

from syncvp.diffusion.schedule import NoiseSchedule, extract

Prediction = Literal["eps", "x0", "v"]
PREDICTIONS = ("eps", "x0", "v")

Denoiser = Callable[[Tensor, Tensor], Tensor]
"""(x_t [B, ...], t [B] int64) -> the network's prediction [B, ...] (conditioning bound by the caller)."""


def q_sample(schedule: NoiseSchedule, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """A draw of q(x_t | x_0): sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
    return (
        extract(schedule.sqrt_alphas_cumprod, t, x0) * x0
        + extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * noise
    )


def x0_from_eps(schedule: NoiseSchedule, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
    return (
        extract(schedule.sqrt_recip_alphas_cumprod, t, x_t) * x_t
        - extract(schedule.sqrt_recipm1_alphas_cumprod, t, x_t) * eps
    )


def eps_from_x0(schedule: NoiseSchedule, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
    """eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)."""
    return (extract(schedule.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x0) / extract(
        schedule.sqrt_recipm1_alphas_cumprod, t, x_t
    )


def v_from_x0_eps(schedule: NoiseSchedule, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    """v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0."""
    return (
        extract(schedule.sqrt_alphas_cumprod, t, x0) * eps - extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * x0
    )


def x0_from_v(schedule: NoiseSchedule, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
    """x_0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v."""
    return (
        extract(schedule.sqrt_alphas_cumprod, t, x_t) * x_t
        - extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t) * v
    )


def eps_from_v(schedule: NoiseSchedule, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
    """eps = sqrt(1 - alpha_bar_t) x_t + sqrt(alpha_bar_t) v."""
    return (
        extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t) * x_t
        + extract(schedule.sqrt_alphas_cumprod, t, x_t) * v
    )


def split_prediction(
    schedule: NoiseSchedule, prediction: Prediction, output: Tensor, x_t: Tensor, t: Tensor
) -> tuple[Tensor, Tensor]:
    """The network's output read as (x_0, eps) under its parameterisation."""
    if prediction == "eps":
        return x0_from_eps(schedule, x_t, t, output), output
    if prediction == "x0":
        return output, eps_from_x0(schedule, x_t, t, output)
    if prediction == "v":
        return x0_from_v(schedule, x_t, t, output), eps_from_v(schedule, x_t, t, output)
    raise ValueError(f"unknown prediction {prediction!r} (known: {PREDICTIONS})")


def training_target(schedule: NoiseSchedule, prediction: Prediction, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """What the network regresses: eps, x_0 or v."""
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    if prediction == "v":
        return v_from_x0_eps(schedule, x0, t, noise)
    raise ValueError(f"unknown prediction {prediction!r} (known: {PREDICTIONS})")


def q_posterior(schedule: NoiseSchedule, x0: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """q(x_{t-1} | x_t, x_0) = N(coef1_t x_0 + coef2_t x_t, beta~_t).

    Returns:
        (mean [B, ...], variance [B, 1, ...], clipped log-variance [B, 1, ...]).
    """
    mean = extract(schedule.posterior_mean_coef1, t, x_t) * x0 + extract(schedule.posterior_mean_coef2, t, x_t) * x_t
    return (
        mean,
        extract(schedule.posterior_variance, t, x_t),
        extract(schedule.posterior_log_variance_clipped, t, x_t),
    )


def sample_timesteps(
    batch: int,
    num_timesteps: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    *,
    high_share: float = 0.0,
    high_from: int = 0,
) -> Tensor:
    """t ~ U{0, ..., T-1} per sample, [B] int64, drawn from `generator` (on `generator`'s device).

    With `high_share` > 0 each sample's t comes instead, with probability `high_share`, from
    U{high_from, ..., T-1} (`diffusion.high_noise_share`): three draws in a fixed order (the
    uniform t, the high-noise t, the coin u), t = high where u < high_share. With 0 only the first
    draw is made, so the stream is the plain one.
    """
    gen_device = generator.device
    t = torch.randint(0, num_timesteps, (batch,), generator=generator, device=gen_device)
    if high_share > 0:
        if not 0 <= high_from < num_timesteps:
            raise ValueError(f"high_from must be in [0, {num_timesteps - 1}], got {high_from}")
        high = torch.randint(high_from, num_timesteps, (batch,), generator=generator, device=gen_device)
        coin = torch.rand(batch, generator=generator, device=gen_device)
        t = torch.where(coin < high_share, high, t)
    return t.to(device)


def mean_flat(x: Tensor) -> Tensor:
    """Mean over every axis but the first: [B, ...] -> [B]."""
    return x.mean(dim=tuple(range(1, x.ndim)))


def min_snr_weights(schedule: NoiseSchedule, t: Tensor, prediction: Prediction, gamma: float | None) -> Tensor | None:
    """Min-SNR-gamma loss weights [B] (Hang et al. 2023), or None for the plain L_simple (gamma None).

    With SNR_t = alpha_bar_t / (1 - alpha_bar_t), the weight of the x0-error is min(SNR_t, gamma);
    expressed on each parameterisation's own MSE that is min(SNR, gamma) / SNR for eps,
    min(SNR, gamma) / (SNR + 1) for v, and min(SNR, gamma) for x0. It caps the weight of the
    easy, low-noise timesteps, so training spends itself where the prediction is hard.
    """
    if gamma is None:
        return None
    if not gamma > 0:
        raise ValueError(f"min-SNR gamma must be > 0, got {gamma}")
    abar = schedule.alphas_cumprod.to(t.device)[t]
    snr = abar / (1.0 - abar)
    capped = torch.clamp(snr, max=gamma)
    if prediction == "eps":
        return (capped / snr).float()
    if prediction == "v":
        return (capped / (snr + 1.0)).float()
    if prediction == "x0":
        return capped.float()
    raise ValueError(f"unknown prediction {prediction!r} (known: {PREDICTIONS})")


def training_loss(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    x0: Tensor,
    *,
    t: Tensor,
    noise: Tensor,
    prediction: Prediction = "eps",
    weights: Tensor | None = None,
) -> Tensor:
    """L_simple per sample: mean over (C, ...) of (f(x_t, t) - target)^2 (docs/method.md §3.4).

    Args:
        denoiser: (x_t, t) -> prediction, with any conditioning bound by the caller.
        x0: [B, ...] clean latents.
        t: [B] timesteps; noise: eps, shaped like x0 (both drawn by the caller from its generator).
        weights: optional per-sample weights [B] (e.g. `min_snr_weights`).

    Returns:
        [B] losses (the caller reduces, e.g. with `.mean()`).
    """
    x_t = q_sample(schedule, x0, t, noise)
    target = training_target(schedule, prediction, x0, t, noise)
    loss = mean_flat((denoiser(x_t, t).float() - target.float()) ** 2)
    return loss if weights is None else loss * weights.to(loss.device)
