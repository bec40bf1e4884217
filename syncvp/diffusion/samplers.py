"""Reverse-process samplers: DDPM ancestral sampling and DDIM (Song et al. 2021) with eta.

Both take the denoiser as a callable and an explicit `torch.Generator`. They sample one latent
tensor [B, C, L], or several latents jointly (a dict {modality: [B, C, L]} and a denoiser that
maps such a dict to a dict, e.g. the joint model): with `same_noise`, every modality starts from
the same x_T and receives the same noise at every step (docs/method.md §5.1; the official sampler always
shares the step noise, we share it only when asked).

DDIM step from t to t' < t (t' = -1 means alpha_bar = 1), with x0^ and eps^ from the network:
    sigma = eta sqrt((1 - a_t / a_t') (1 - a_t') / (1 - a_t)),   c = sqrt(1 - a_t' - sigma^2),
    x_t' = sqrt(a_t') x0^ + c eps^ + sigma z,   z ~ N(0, I)
DDPM ancestral step: x_{t-1} = coef1_t x0^ + coef2_t x_t + sqrt(beta~_t) z (no noise at t = 0).
With eta = 1 and all T steps, DDIM and DDPM coincide when eps^ is consistent with x0^
(always without clamping; with clamping when `rederive_eps` recomputes eps^ from the clamped x0^).

Known latents (modality completion, RePaint-style replacement; Lugmayr et al. 2022): a dict of
latents may hold some whose x0 is known (`known`). Before every denoiser call at t such a latent
is replaced by a draw of q(x_t | x0) = sqrt(a_t) x0 + sqrt(1 - a_t) n, so the network sees the
known content at the noise level it was trained with, and only the others are sampled. The
noise n: with `same_noise` (the joint model was trained with one eps for every modality) the
noise part of the first unknown latent, n = (x_t^u - sqrt(a_t) x0^u) / sqrt(1 - a_t) with x0^u
the estimate its x_t was made from (at x_T: x_T^u itself), so the pair sits where training put
it; otherwise fresh N(0, I). With `resample` r > 1 every step t -> t' is repeated r times, the
state carried back to t by q(x_t | x_t') = N(sqrt(a_t / a_t') x_t', (1 - a_t / a_t') I) between
repeats (RePaint's resampling with jump length 1), which lets the unknown latents settle
towards the known ones. The known latents come back as their x0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Sequence

import torch
from torch import Tensor

from syncvp.diffusion.process import Prediction, eps_from_x0, split_prediction
from syncvp.diffusion.schedule import NoiseSchedule
from syncvp.progress import ProgressEvent, ProgressFn

Latents = Tensor | dict[str, Tensor]
"""One latent [B, C, L] or a dict of latents keyed by modality."""

LatentDenoiser = Callable[[Latents, Tensor], Latents]
"""(x_t, t [B] int64) -> the network's prediction, same structure as x_t."""


def ddim_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """The DDIM timesteps, descending, ending with -1: int(linspace(-1, T - 1, steps + 1)) reversed.

    For T = 1000 and 100 steps: [999, 989, ..., 19, 9, -1]; for steps = T: [T-1, ..., 0, -1]
    (the official spacing, computed in float32 and truncated like the released code).
    """
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"DDIM steps must be in [1, {num_timesteps}], got {steps}")
    times = torch.linspace(-1, num_timesteps - 1, steps + 1).int().tolist()
    return list(reversed(times))


@dataclass(frozen=True)
class SamplerOutput:
    """What a sampler returns.

    Attributes:
        sample: x_0, the structure of the input (a tensor or a dict of tensors).
        x0_trajectory: the (clamped) x0 prediction at every step, if asked for.
    """

    sample: Latents
    x0_trajectory: list[Latents] | None = None


def draw_noise(
    shapes: Sequence[int] | Mapping[str, Sequence[int]],
    generator: torch.Generator,
    *,
    same_noise: bool,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Latents:
    """N(0, I) noise for one latent shape, or a dict of shapes (one draw shared by all when
    `same_noise`, which needs equal shapes; otherwise one draw per name, in dict order).

    Draws happen on the generator's device, then move to `device`, so a CPU generator gives the
    same numbers whatever the model's device.
    """

    def randn(shape):
        return torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=dtype).to(device)

    if not isinstance(shapes, Mapping):
        return randn(shapes)
    if same_noise:
        distinct = {tuple(s) for s in shapes.values()}
        if len(distinct) != 1:
            raise ValueError(f"same_noise needs every latent to have one shape, got {dict(shapes)}")
        shared = randn(distinct.pop())
        return {name: shared for name in shapes}
    return {name: randn(shape) for name, shape in shapes.items()}


@dataclass(frozen=True, kw_only=True)
class Sampler:
    """DDPM or DDIM sampling of the reverse process.

    Attributes:
        schedule: the process's tables.
        prediction: the network's parameterisation ("eps", "x0", "v").
        method: "ddim" or "ddpm" (ancestral, posterior variance, all timesteps).
        steps: DDIM steps (must be the number of timesteps for "ddpm").
        eta: DDIM stochasticity (0 = deterministic).
        clip_x0: clamp x0^ to [-1, 1] at every step.
        rederive_eps: recompute eps^ from the clamped x0^ (DDIM only; DDPM never uses eps^). For
            "x0" and "v" predictions eps^ always comes from the clamped x0^.
        same_noise: share initial and per-step noise between the latents of a dict.
    """

    schedule: NoiseSchedule
    prediction: Prediction
    method: Literal["ddim", "ddpm"]
    steps: int
    eta: float = 1.0
    clip_x0: bool = True
    rederive_eps: bool = False
    same_noise: bool = True

    def __post_init__(self) -> None:
        T = self.schedule.num_timesteps
        if self.method not in ("ddim", "ddpm"):
            raise ValueError(f"unknown sampling method {self.method!r} (known: ddim, ddpm)")
        if self.method == "ddpm" and self.steps != T:
            raise ValueError(f"ddpm sampling runs all {T} timesteps; steps is {self.steps}")
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        ddim_timesteps(T, self.steps)  # validates steps

    @property
    def timesteps(self) -> list[int]:
        """The timesteps visited, descending, followed by -1."""
        return ddim_timesteps(self.schedule.num_timesteps, self.steps)

    def sample(
        self,
        denoiser: LatentDenoiser,
        shapes: Sequence[int] | Mapping[str, Sequence[int]],
        *,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        x_T: Latents | None = None,
        return_x0: bool = False,
        progress: ProgressFn | None = None,
        x0_bounds=None,
        known: Mapping[str, Tensor] | None = None,
        resample: int = 1,
    ) -> SamplerOutput:
        """Run the reverse process from x_T ~ N(0, I) to x_0.

        Args:
            denoiser: (x_t, t [B]) -> prediction; a tensor [B, C, L] in, a tensor out, or a dict
                {name: [B, C, L]} in, a dict out.
            shapes: the latent shape [B, C, L], or a dict of shapes keyed by name.
            generator: the only source of randomness (initial and step noise).
            x_T: start from this noise instead of drawing it (shapes must match `shapes`).
            return_x0: also return the x0 prediction of every step.
            progress: called after every step with ProgressEvent("sample", step, steps).
            x0_bounds: where `clip_x0` clamps x0^: None = [-1, 1]; else (lo, hi) tensors
                broadcastable to the latent (a dict of such pairs for a dict of latents), e.g. the
                per-value range of a shifted and scaled diffusion space
                (`syncvp.diffusion.target.DiffusionTarget.bounds`).
            known: {name: x0} of latents whose x0 is known (a dict of latents only; at least one
                name must stay unknown): replaced by draws of q(x_t | x0) before every call
                (module docstring); returned as x0.
            resample: run every step this many times (RePaint resampling, jump length 1; >= 1).
                Each repeat calls the denoiser once more and draws its noise from `generator`.
        """
        schedule = self.schedule.to(device)  # tables for per-sample lookups; scalars come from the CPU copy
        single = not isinstance(shapes, Mapping)
        if x_T is None:
            x_T = draw_noise(shapes, generator, same_noise=self.same_noise, device=device, dtype=dtype)
        x = {"": x_T} if single else dict(x_T)
        want = {"": tuple(shapes)} if single else {k: tuple(v) for k, v in shapes.items()}
        if {k: tuple(v.shape) for k, v in x.items()} != want:
            raise ValueError(f"x_T has shapes { {k: tuple(v.shape) for k, v in x.items()} }, expected {want}")
        call = (lambda z, t: {"": denoiser(z[""], t)}) if single else denoiser
        bounds = None if x0_bounds is None else ({"": x0_bounds} if single else dict(x0_bounds))
        known = self._check_known(known, x, single, resample)
        unknown = next((k for k in x if k not in known), None)
        base = {k: torch.zeros_like(v) for k, v in x.items()}  # x0^ each x_t was made from (x_T: none)
        batch = next(iter(x.values())).shape[0]
        pairs = list(zip(self.timesteps[:-1], self.timesteps[1:]))
        trajectory = [] if return_x0 else None
        for i, (t, t_next) in enumerate(pairs):
            t_batch = torch.full((batch,), t, device=device, dtype=torch.long)
            for r in range(resample):
                if r > 0:  # back from t' to t: q(x_t | x_t')
                    x = self._renoise(x, t, t_next, generator)
                    base = {
                        k: v * math.sqrt(self.schedule.alpha_bar(t) / self.schedule.alpha_bar(t_next))
                        for k, v in base.items()
                    }
                if known:
                    x.update(self._replace(known, x, base, unknown, t, generator))
                out = call(x, t_batch)
                x0, eps = self._predict(schedule, out, x, t_batch, bounds)
                noise = self._step_noise(x, t, t_next, generator)
                for k in x:
                    z = None if noise is None else noise[k]
                    x[k] = (
                        _ddpm_step(self.schedule, x[k], t, x0[k], z)
                        if self.method == "ddpm"
                        else _ddim_step(self.schedule, t, t_next, x0[k], eps[k], self.eta, z)
                    )
                base = {k: v * math.sqrt(self.schedule.alpha_bar(t_next)) for k, v in x0.items()}
            if trajectory is not None:
                trajectory.append(x0[""] if single else x0)
            if progress is not None:
                progress(ProgressEvent("sample", i + 1, len(pairs)))
        x.update({k: v.to(x[k].dtype) for k, v in known.items()})
        return SamplerOutput(sample=x[""] if single else x, x0_trajectory=trajectory)

    def _check_known(self, known, x: Mapping[str, Tensor], single: bool, resample: int) -> dict[str, Tensor]:
        if resample < 1:
            raise ValueError(f"resample must be >= 1, got {resample}")
        if not known:
            return {}
        if single:
            raise ValueError("known latents need a dict of latents (one latent alone has nothing left to sample)")
        extra = set(known) - set(x)
        if extra:
            raise ValueError(f"known latents {sorted(extra)} are not among the sampled ones {sorted(x)}")
        if set(known) == set(x):
            raise ValueError(f"every latent is known ({sorted(x)}): nothing to sample")
        for k, v in known.items():
            if tuple(v.shape) != tuple(x[k].shape):
                raise ValueError(f"known latent {k!r} has shape {tuple(v.shape)}, expected {tuple(x[k].shape)}")
        return {k: v.to(x[k]) for k, v in known.items()}

    def _replace(
        self,
        known: Mapping[str, Tensor],
        x: Mapping[str, Tensor],
        base: Mapping[str, Tensor],
        unknown: str | None,
        t: int,
        generator: torch.Generator,
    ) -> dict[str, Tensor]:
        """q(x_t | x0) of every known latent, with the unknown latent's noise part under same_noise."""
        a = self.schedule.alpha_bar(t)
        if self.same_noise and unknown is not None:
            part = x[unknown] - base[unknown]  # sqrt(1 - a_t) n
            return {k: math.sqrt(a) * v + part for k, v in known.items()}
        ref = next(iter(known.values()))
        shapes = {k: v.shape for k, v in known.items()}
        noise = draw_noise(shapes, generator, same_noise=False, device=ref.device, dtype=ref.dtype)
        return {k: math.sqrt(a) * v + math.sqrt(1 - a) * noise[k] for k, v in known.items()}

    def _renoise(self, x: Mapping[str, Tensor], t: int, t_next: int, generator: torch.Generator) -> dict[str, Tensor]:
        """A draw of q(x_t | x_t') for every latent (shared noise under same_noise)."""
        ratio = self.schedule.alpha_bar(t) / self.schedule.alpha_bar(t_next)
        ref = next(iter(x.values()))
        shapes = {k: v.shape for k, v in x.items()}
        noise = draw_noise(shapes, generator, same_noise=self.same_noise, device=ref.device, dtype=ref.dtype)
        return {k: math.sqrt(ratio) * v + math.sqrt(1 - ratio) * noise[k] for k, v in x.items()}

    def _predict(
        self,
        schedule: NoiseSchedule,
        out: Mapping[str, Tensor],
        x: Mapping[str, Tensor],
        t: Tensor,
        bounds: Mapping[str, tuple[Tensor, Tensor]] | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        if set(out) != set(x):
            raise ValueError(f"the denoiser returned {sorted(out)}, expected {sorted(x)}")
        x0, eps = {}, {}
        for k in x:
            x0[k], eps[k] = split_prediction(schedule, self.prediction, out[k].to(x[k].dtype), x[k], t)
            if self.clip_x0:
                if bounds is None:
                    x0[k] = x0[k].clamp(-1.0, 1.0)
                else:
                    lo, hi = bounds[k]
                    x0[k] = torch.minimum(torch.maximum(x0[k], lo.to(x0[k])), hi.to(x0[k]))
                if self.rederive_eps or self.prediction != "eps":
                    eps[k] = eps_from_x0(schedule, x[k], t, x0[k])
        return x0, eps

    def _step_noise(
        self, x: Mapping[str, Tensor], t: int, t_next: int, generator: torch.Generator
    ) -> dict[str, Tensor] | None:
        """Noise of this step, or None when the step adds none (DDPM t = 0, DDIM sigma = 0)."""
        if self.method == "ddpm" and t == 0:
            return None
        if self.method == "ddim" and (t_next < 0 or self.eta == 0):
            return None
        ref = next(iter(x.values()))
        shapes = {k: v.shape for k, v in x.items()}
        return draw_noise(shapes, generator, same_noise=self.same_noise, device=ref.device, dtype=ref.dtype)


def _ddpm_step(schedule: NoiseSchedule, x_t: Tensor, t: int, x0: Tensor, noise: Tensor | None) -> Tensor:
    """x_{t-1} = coef1_t x0^ + coef2_t x_t (+ sqrt(beta~_t) z for t > 0)."""
    mean = float(schedule.posterior_mean_coef1[t]) * x0 + float(schedule.posterior_mean_coef2[t]) * x_t
    if noise is None:
        return mean
    return mean + math.sqrt(float(schedule.posterior_variance[t])) * noise


def _ddim_step(
    schedule: NoiseSchedule, t: int, t_next: int, x0: Tensor, eps: Tensor, eta: float, noise: Tensor | None
) -> Tensor:
    """x_t' = sqrt(a_t') x0^ + c eps^ + sigma z (x0^ at the last step, t' = -1)."""
    if t_next < 0:
        return x0
    a_t, a_next = schedule.alpha_bar(t), schedule.alpha_bar(t_next)
    var = eta**2 * (1 - a_t / a_next) * (1 - a_next) / (1 - a_t)
    c2 = 1 - a_next - var
    if c2 < -1e-12:
        raise ValueError(f"eta {eta} is too large for the step {t} -> {t_next} (1 - a' - sigma^2 = {c2:.3g} < 0)")
    out = math.sqrt(a_next) * x0 + math.sqrt(max(c2, 0.0)) * eps
    return out if noise is None else out + math.sqrt(var) * noise
