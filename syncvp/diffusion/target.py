"""The space the diffusion process runs in: the future latent, or its change from the conditioning,
scaled to unit spread.

For a modality with future latent z (tanh-bounded, in [-1, 1]) and conditioning latent c (all
zeros when the modality's context is missing, as everywhere in this project), the process
diffuses, per sample,

    x0 = (z - b) / s,   b = c and s = s_c  if `residual` and the context is present,
                        b = 0 and s = s_0  otherwise,

and a sample x0 maps back to z = b + s x0. `residual` needs a conditioning latent in the future
latent's own space (`diffusion.context_encoder: future`): then x0 = 0 means "the scene stands
still after the last observed frame", and the network learns how it moves on. The scales are
standard deviations over training windows (`measure_scale`; 1 without `diffusion.normalize`):
s_c of the change z - c, s_0 of z itself, so the signal the noise schedule destroys has unit
spread whether or not the context is there, as latent-diffusion practice scales latents
(Rombach et al. 2022, Sec. 4.3.2). (A residual about a missing context is the latent itself,
about three times larger than a change: one shared scale would let the context-free samples
dominate the loss.)

A conditioning latent with more channels than z (`diffusion.context_motion`: the held context
followed by its motion channels) contributes only its first C' channels to b: the base is always
the held context.

Because z is bounded, x0 is bounded too, per value: clamping the predicted x0 to
[(-1 - b) / s, (1 - b) / s] (`bounds`) is the plain [-1, 1] clamp of the paper's sampler, moved
into this space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import Tensor


@dataclass(frozen=True)
class DiffusionTarget:
    """Maps latents to the diffusion space and back, per modality.

    Attributes:
        residual: diffuse z - c instead of z where the context is present.
        scales: {modality: s_c > 0}, the scale where the context is present; 1 when not listed.
        missing_scales: {modality: s_0 > 0}, the scale where it is missing; `scales` when not listed.
    """

    residual: bool = False
    scales: Mapping[str, float] = field(default_factory=dict)
    missing_scales: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for m, s in [*self.scales.items(), *self.missing_scales.items()]:
            if not s > 0:
                raise ValueError(f"the diffusion scale of {m!r} must be > 0, got {s}")

    @property
    def identity(self) -> bool:
        return (
            not self.residual
            and all(s == 1.0 for s in self.scales.values())
            and all(s == 1.0 for s in self.missing_scales.values())
        )

    def scale(self, modality: str) -> float:
        """s_c: the scale where the context is present."""
        return float(self.scales.get(modality, 1.0))

    def missing_scale(self, modality: str) -> float:
        """s_0: the scale where the context is missing."""
        return float(self.missing_scales.get(modality, self.scale(modality)))

    def _affine(self, modality: str, like: Tensor, cond: Tensor | None) -> tuple[Tensor | float, Tensor | float]:
        """(b, s) per sample, broadcastable to `like` [B, ...]."""
        s_c, s_0 = self.scale(modality), self.missing_scale(modality)
        if cond is None:
            if self.residual:
                raise ValueError("a residual diffusion target needs the conditioning latent")
            return 0.0, s_0
        present = cond.reshape(cond.shape[0], -1).ne(0).any(dim=1).reshape(-1, *([1] * (like.ndim - 1)))
        scale = torch.where(
            present,
            torch.tensor(s_c, dtype=like.dtype, device=like.device),
            torch.tensor(s_0, dtype=like.dtype, device=like.device),
        )
        if not self.residual:
            return 0.0, scale
        cond = base_of(cond, like.shape[1])
        if cond.shape != like.shape:
            raise ValueError(
                "a residual diffusion target needs a conditioning latent shaped like the future latent "
                f"(diffusion.context_encoder: future), got {tuple(cond.shape)} for {tuple(like.shape)}"
            )
        return cond.to(like.dtype), scale

    def encode(self, modality: str, latent: Tensor, cond: Tensor | None) -> Tensor:
        """x0 = (z - b) / s for latents z [B, C, L] and conditioning c [B, C, L] (zeros = missing)."""
        base, scale = self._affine(modality, latent, cond)
        return (latent - base) / scale

    def decode(self, modality: str, x0: Tensor, cond: Tensor | None) -> Tensor:
        """z = b + s x0."""
        base, scale = self._affine(modality, x0, cond)
        return x0 * scale + base

    def bounds(self, modality: str, like: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        """(lo, hi) of x0 per value: the images of z = -1 and z = 1."""
        base, scale = self._affine(modality, like, cond)
        ones = torch.ones_like(like)
        return (-ones - base) / scale, (ones - base) / scale

    def as_dict(self) -> dict:
        return {
            "residual": self.residual,
            "scales": {m: float(s) for m, s in self.scales.items()},
            "missing_scales": {m: float(s) for m, s in self.missing_scales.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping | None) -> "DiffusionTarget":
        """The target saved by `as_dict`; None (files written before targets existed) = identity."""
        if not data:
            return cls()
        return cls(
            residual=bool(data["residual"]),
            scales={m: float(s) for m, s in data["scales"].items()},
            missing_scales={m: float(s) for m, s in data.get("missing_scales", {}).items()},
        )


def base_of(cond: Tensor, channels: int) -> Tensor:
    """The held-context part of a conditioning latent [B, C_c, L]: its first `channels` (C')
    channels when it carries motion channels after them (C_c = 2C'), else itself."""
    return cond[:, :channels] if cond.shape[1] == 2 * channels else cond


def measure_scale(latents: Tensor, conds: Tensor | None, residual: bool) -> float:
    """s = std(z - b) over every value of N windows' latents [N, C, L] (b = their conditioning
    latents when `residual`, else 0), the spread the diffusion space divides by."""
    if residual and conds is not None:
        conds = base_of(conds, latents.shape[1])
    base = conds if residual else 0.0
    if residual and (conds is None or conds.shape != latents.shape):
        raise ValueError("measuring a residual scale needs conditioning latents shaped like the future latents")
    value = float((latents.double() - base).std())
    if not value > 0:
        raise ValueError("the training latents have no spread: cannot normalise the diffusion target")
    return value
