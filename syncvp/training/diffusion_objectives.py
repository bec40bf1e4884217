"""The training objectives of the two diffusion stages, as `Update`s for `syncvp.training.loop.fit`.

Per micro-batch of B windows (latents from `diffusion_latents.batch_latents`, in the diffusion
space of a `DiffusionTarget`):
- stage 1 (`single_update`): keep_b ~ Bernoulli(cond_prob) per sample, c = keep * context
  latent, t ~ U{0..T-1} (with the high-noise share), eps ~ N(0, I), loss = mean_b mean_(C,L)
  w_t (f(x_t, t, c) - target)^2 (docs/method.md §3.4);
- stage 2 (`joint_update`): one presence pattern per sample, every missing modality's context
  zeroed, one t (and one eps under `joint.same_noise`) for all modalities, loss = sum_m L_m
  (docs/method.md §4.4).
"""

from __future__ import annotations

import torch
from torch import nn

from syncvp.diffusion.conditioning import apply_presence, drop_condition, keep_condition, sample_presence
from syncvp.diffusion.factory import build_schedule
from syncvp.diffusion.joint import draw_joint_noise, joint_training_loss
from syncvp.diffusion.process import min_snr_weights, sample_timesteps, training_loss
from syncvp.diffusion.samplers import draw_noise
from syncvp.diffusion.target import DiffusionTarget
from syncvp.training.diffusion_job import DiffusionJob
from syncvp.training.diffusion_latents import Encoders, batch_latents
from syncvp.training.loop import Update

UPDATE = "model"  # the name of the one parameter group's update (checkpoint keys use it)


def single_update(
    job: DiffusionJob, model: nn.Module, encoders: Encoders, generator: torch.Generator, target: DiffusionTarget
) -> Update:
    """Stage 1: per-sample conditioning dropout + L_simple on the future latent (in the diffusion
    space of `target`)."""
    (m,) = job.modalities
    schedule = build_schedule(job.diffusion).to(generator.device)

    def loss(batch, step):
        context, future = batch_latents(job, batch, encoders)
        keep = keep_condition(future[m].shape[0], job.train.cond_prob, generator)
        cond = drop_condition(context[m], keep)
        x0 = target.encode(m, future[m], cond)
        t = sample_timesteps(
            x0.shape[0],
            job.diffusion.timesteps,
            generator,
            device=x0.device,
            high_share=job.diffusion.high_noise_share,
            high_from=job.diffusion.high_noise_from,
        )
        noise = draw_noise(x0.shape, generator, same_noise=True, device=x0.device)
        weights = min_snr_weights(schedule, t, job.diffusion.prediction, job.diffusion.min_snr_gamma)
        value = training_loss(
            lambda x, tt: model(x, tt, cond),
            schedule,
            x0,
            t=t,
            noise=noise,
            prediction=job.diffusion.prediction,
            weights=weights,
        ).mean()
        return value, {f"loss_{m}": float(value.detach()), "cond_kept": float(keep.float().mean())}

    return Update(UPDATE, loss, clip_groups=[list(model.parameters())])


def joint_update(
    job: DiffusionJob, model: nn.Module, encoders: Encoders, generator: torch.Generator, target: DiffusionTarget
) -> Update:
    """Stage 2: per-sample presence patterns + the joint loss with shared or independent noise."""
    schedule = build_schedule(job.diffusion).to(generator.device)

    def loss(batch, step):
        context, future = batch_latents(job, batch, encoders)
        batch_size = next(iter(future.values())).shape[0]
        present = sample_presence(batch_size, job.patterns, job.modalities, generator)
        cond = apply_presence(context, present)
        x0 = {m: target.encode(m, z, cond[m]) for m, z in future.items()}
        t, noise = draw_joint_noise(
            x0,
            job.diffusion.timesteps,
            generator,
            same_noise=job.joint.same_noise,
            high_share=job.diffusion.high_noise_share,
            high_from=job.diffusion.high_noise_from,
        )
        weights = min_snr_weights(schedule, t, job.diffusion.prediction, job.diffusion.min_snr_gamma)
        out = joint_training_loss(
            lambda x, tt: model(x, tt, cond),
            schedule,
            x0,
            t=t,
            noise=noise,
            prediction=job.diffusion.prediction,
            weights=weights,
        )
        metrics = {f"loss_{m}": float(v.detach()) for m, v in out.per_modality.items()}
        metrics.update({f"present_{m}": float(p.float().mean()) for m, p in present.items()})
        return out.total, metrics

    return Update(UPDATE, loss, clip_groups=[list(model.parameters())])
