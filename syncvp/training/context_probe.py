"""Does the model use its context? A fixed probe, logged during diffusion training.

A probe is a few training windows (evenly spaced over the training set) noised at three fixed
timesteps t = round(f (T - 1)) for f in `FRACTIONS`, with a fixed noise draw. Every `every`
steps the model predicts x0 for them twice, with the true context and with the context zeroed
(what the model sees when a modality is unobserved), and the probe records per modality

    x0_err_t<t>[_<m>]           = mean (x0^(x_t, t, c) - x0)^2
    x0_err_t<t>_nocontext[_<m>] = mean (x0^(x_t, t, 0) - x0)^2

and, for the joint model, a third case per modality m: m's context zeroed, the other modalities'
contexts true (what the model sees when only the others are observed),

    x0_err_t<t>_others_<m>      = mean (x0^_m(x_t, t, {m: 0, others: c}) - x0_m)^2

which is below the no-context error only if m takes something from the other branches: the
cross-modal transfer the missing-modality settings rely on.

(latent units: the model's x0^ in its diffusion space, clamped to the latents' range when
`clamp`, mapped back to a latent by the unit's `DiffusionTarget` with the conditioning of that
case). A model that uses its
context has a clearly lower error with it, most of all at large t where x_t says little about x0;
equal errors mean the context is ignored. The probe draws from its own generator, so it never
changes the training run.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from syncvp.diffusion.process import q_sample, split_prediction
from syncvp.diffusion.schedule import NoiseSchedule
from syncvp.diffusion.target import DiffusionTarget
from syncvp.seeding import torch_generator

FRACTIONS = (0.1, 0.5, 0.9)


def probe_timesteps(num_timesteps: int) -> tuple[int, ...]:
    """The probed timesteps: round(f (T - 1)) for f in FRACTIONS."""
    return tuple(int(round(f * (num_timesteps - 1))) for f in FRACTIONS)


def probe_indices(dataset_size: int, count: int) -> list[int]:
    """`count` window indices spread evenly over the training windows."""
    count = max(1, min(count, dataset_size))
    return [int(i * dataset_size / count) for i in range(count)]


class ContextProbe:
    """Callable () -> {metric: float}: the x0 errors of the probe with and without context.

    Args:
        model: the stage-1 UNet ((x, t, c) -> out) or the joint model (({m: x}, t, {m: c}) -> {m: out}).
        joint: whether `model` is the joint model.
        context, future: {m: [N, C', L]} latents of the probe windows.
        schedule, prediction: the diffusion process and the network's parameterisation.
        seed: the probe's noise stream.
        target: the diffusion space the model works in.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        joint: bool,
        context: Mapping[str, Tensor],
        future: Mapping[str, Tensor],
        schedule: NoiseSchedule,
        prediction: str,
        seed: int,
        clamp: bool = True,
        target: DiffusionTarget | None = None,
    ):
        self.model, self.joint, self.prediction, self.clamp = model, joint, prediction, clamp
        self.target = target or DiffusionTarget()
        self.context, self.future = dict(context), dict(future)
        self.schedule = schedule
        device = next(iter(future.values())).device
        generator = torch_generator(seed, "context-probe", device="cpu")
        first = next(iter(future.values()))
        self.noise = torch.randn(first.shape, generator=generator).to(device)  # one draw, shared by modalities
        self.timesteps = probe_timesteps(schedule.num_timesteps)

    def _forward(self, x: dict[str, Tensor], t: Tensor, cond: dict[str, Tensor]) -> dict[str, Tensor]:
        if self.joint:
            return self.model(x, t, cond)
        (m,) = x
        return {m: self.model(x[m], t, cond[m])}

    def _latent_error(self, m: str, pred: Tensor, x_t: Tensor, t: Tensor, cond: Tensor, z: Tensor) -> float:
        """mean (z^ - z)^2 of modality m's prediction, in latent units."""
        x0_hat, _ = split_prediction(self.schedule, self.prediction, pred.float(), x_t, t)
        if self.clamp:
            lo, hi = self.target.bounds(m, x0_hat, cond)
            x0_hat = torch.minimum(torch.maximum(x0_hat, lo), hi)
        return float(((self.target.decode(m, x0_hat, cond) - z) ** 2).mean())

    @torch.no_grad()
    def __call__(self) -> dict[str, float]:
        was_training = self.model.training
        self.model.eval()
        out: dict[str, float] = {}
        try:
            for t_value in self.timesteps:
                t = torch.full((self.noise.shape[0],), t_value, dtype=torch.long, device=self.noise.device)
                zeros = {m: torch.zeros_like(c) for m, c in self.context.items()}
                for suffix, cond in (("", self.context), ("_nocontext", zeros)):
                    x0 = {m: self.target.encode(m, z, cond[m]) for m, z in self.future.items()}
                    x_t = {m: q_sample(self.schedule, v, t, self.noise) for m, v in x0.items()}
                    pred = self._forward(x_t, t, cond)
                    for m, z in self.future.items():
                        name = probe_column(t_value, suffix == "", m if self.joint else None)
                        out[name] = self._latent_error(m, pred[m], x_t[m], t, cond[m], z)
                if self.joint and len(self.future) > 1:
                    for m, z in self.future.items():  # only the other modalities observed
                        cond = {**self.context, m: zeros[m]}
                        x0 = {j: self.target.encode(j, v, cond[j]) for j, v in self.future.items()}
                        x_t = {j: q_sample(self.schedule, v, t, self.noise) for j, v in x0.items()}
                        pred = self._forward(x_t, t, cond)
                        out[probe_column(t_value, False, m, others=True)] = self._latent_error(
                            m, pred[m], x_t[m], t, cond[m], z
                        )
        finally:
            self.model.train(was_training)
        return out


def probe_column(t: int, with_context: bool, modality: str | None = None, others: bool = False) -> str:
    """A probe value's name (a column of plots/context.tsv): `x0_err_t<t>[_nocontext][_<m>]`, the
    modality only for the joint model; `x0_err_t<t>_others_<m>` with `others` (joint model: only
    the other modalities' contexts given)."""
    if others:
        if not modality:
            raise ValueError("the only-the-others probe column belongs to a modality of the joint model")
        return f"x0_err_t{t}_others_{modality}"
    return f"x0_err_t{t}" + ("" if with_context else "_nocontext") + (f"_{modality}" if modality else "")


def context_summary(
    rows: list[dict], timesteps: tuple[int, ...], modalities: tuple[str, ...], joint: bool
) -> dict[str, float]:
    """From the last probe row: per probed t (and modality), the ratio of the errors without and
    with context, `context_gain_t<t>[_<m>]` (> 1: the context helps), and for the joint model the
    ratio without context / with only the other modalities' contexts, `cross_gain_t<t>_<m>`
    (> 1: m takes something from the other modalities)."""
    if not rows:
        return {}
    last, out = rows[-1], {}
    for t in timesteps:
        for m in modalities if joint else ("",):
            tail = f"_{m}" if m else ""
            with_c, without = last.get(f"x0_err_t{t}{tail}"), last.get(f"x0_err_t{t}_nocontext{tail}")
            if with_c is None or without is None:
                continue
            out[f"context_gain_t{t}{tail}"] = without / with_c if with_c > 0 else float("inf")
            others = last.get(f"x0_err_t{t}_others{tail}") if m else None
            if others is not None:
                out[f"cross_gain_t{t}{tail}"] = without / others if others > 0 else float("inf")
    return out


ProbeFn = Callable[[], dict[str, float]]
