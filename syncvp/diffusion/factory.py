"""Build the noise schedule and the sampler from the `diffusion`, `sampling` and `joint` sections."""

from __future__ import annotations

from syncvp.config.diffusion import DiffusionConfig, SamplingConfig, check_sampling
from syncvp.config.loader import FieldError
from syncvp.diffusion.samplers import Sampler
from syncvp.diffusion.schedule import NoiseSchedule


def build_schedule(cfg: DiffusionConfig) -> NoiseSchedule:
    return NoiseSchedule.named(cfg.schedule, cfg.timesteps, start=cfg.beta_start, end=cfg.beta_end)


def build_sampler(sampling: SamplingConfig, diffusion: DiffusionConfig, *, same_noise: bool) -> Sampler:
    """The configured sampler; `same_noise` (joint.same_noise) shares noise between modalities."""
    try:
        check_sampling(sampling, diffusion)
    except FieldError as exc:
        raise ValueError(str(exc)) from None
    return Sampler(
        schedule=build_schedule(diffusion),
        prediction=diffusion.prediction,
        method=sampling.method,
        steps=sampling.steps,
        eta=sampling.eta,
        clip_x0=sampling.clip_x0,
        rederive_eps=sampling.rederive_eps,
        same_noise=same_noise,
    )
