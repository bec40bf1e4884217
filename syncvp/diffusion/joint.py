"""The joint (stage 2) training loss over K modalities, with shared or independent noise.

Shared noise (the paper's `same_noise`, docs/method.md §4.4): one eps ~ N(0, I) and one t per sample
for every modality, x_t^m = sqrt(alpha_bar_t) x_0^m + sqrt(1 - alpha_bar_t) eps, and every
branch regresses the same eps. Independent noise draws one eps per modality; t stays shared
(the joint model takes a single timestep). The loss is the unweighted sum over modalities of
each modality's batch-mean L_simple; the terms are also returned for logging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import Tensor

from syncvp.diffusion.process import Prediction, mean_flat, q_sample, sample_timesteps, training_target
from syncvp.diffusion.samplers import draw_noise
from syncvp.diffusion.schedule import NoiseSchedule

JointDenoiser = Callable[[Mapping[str, Tensor], Tensor], Mapping[str, Tensor]]
"""({m: x_t [B, C, L]}, t [B]) -> {m: prediction}; conditioning bound by the caller."""


@dataclass(frozen=True)
class JointLoss:
    """Attributes:
    total: scalar, sum over modalities of the batch-mean losses (what is minimised).
    per_modality: {m: scalar batch-mean loss} (part of the graph; `.item()` to log).
    """

    total: Tensor
    per_modality: dict[str, Tensor]


def draw_joint_noise(
    x0: Mapping[str, Tensor],
    num_timesteps: int,
    generator: torch.Generator,
    *,
    same_noise: bool,
    high_share: float = 0.0,
    high_from: int = 0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One t [B] for all modalities (`sample_timesteps`, with its high-noise share), then eps: one
    tensor shared by every modality when `same_noise` (all latents must have one shape), else one
    per modality in dict order."""
    ref = next(iter(x0.values()))
    t = sample_timesteps(
        ref.shape[0], num_timesteps, generator, device=ref.device, high_share=high_share, high_from=high_from
    )
    noise = draw_noise(
        {m: v.shape for m, v in x0.items()}, generator, same_noise=same_noise, device=ref.device, dtype=ref.dtype
    )
    return t, noise


def joint_training_loss(
    denoiser: JointDenoiser,
    schedule: NoiseSchedule,
    x0: Mapping[str, Tensor],
    *,
    t: Tensor,
    noise: Mapping[str, Tensor],
    prediction: Prediction = "eps",
    weights: Tensor | None = None,
) -> JointLoss:
    """sum_m mean_B mean_(C, L) (f_m(x_t, t) - target_m)^2.

    Args:
        denoiser: the joint model with its conditioning bound.
        x0: {m: [B, C, L]} clean latents (the same frames for every modality).
        t: [B] timesteps shared by all modalities.
        noise: {m: eps}; the same tensor for every m under shared noise.
    """
    if set(noise) != set(x0):
        raise ValueError(f"noise for {sorted(noise)} but latents for {sorted(x0)}")
    x_t = {m: q_sample(schedule, x0[m], t, noise[m]) for m in x0}
    out = denoiser(x_t, t)
    if set(out) != set(x0):
        raise ValueError(f"the denoiser returned {sorted(out)}, expected {sorted(x0)}")
    terms = {}
    for m in x0:
        target = training_target(schedule, prediction, x0[m], t, noise[m])
        per_sample = mean_flat((out[m].float() - target.float()) ** 2)
        terms[m] = (per_sample if weights is None else per_sample * weights.to(per_sample.device)).mean()
    return JointLoss(total=torch.stack(list(terms.values())).sum(), per_modality=terms)
