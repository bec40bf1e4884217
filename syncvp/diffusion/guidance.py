"""Guidance: classifier-free guidance for one modality and SyncVP's modality guidance (docs/method.md §5.2).

A missing conditioning is zeros (as trained with conditioning dropout). With weight w:

- one modality: eps~ = (1 + w) eps(c) - w eps(0);
- K modalities with present set P (the paper: K = 2, P = both): for each modality m,
      eps~_m = o_P + w (o_P - o_{}) + [m in P] w (o_P - o_{P \\ m}),
  all terms read at modality m, where o_S is the joint model's output when only the
  conditionings in S are given. For K = 2 and P = {r, d} this is the official four-pass rule:
  eps~_r = o1_r + w (o1_r - o2_r) + w (o1_r - o4_r) with o1 = (c_r, c_d), o2 = (0, 0),
  o4 = (0, c_d), and symmetrically for d with o3 = (c_r, 0). It needs |P| + 2 passes.

w = 0 is exactly the plain conditional denoiser (one pass). Every w > 0 applies guidance (the
official code silently ignored w >= 1). The passes run as one batched call by default.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import torch
from torch import Tensor

ConditionalDenoiser = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(x_t [B, C, L], t [B], cond [B, C_c, L_c]) -> prediction [B, C, L]."""

JointConditionalDenoiser = Callable[[Mapping[str, Tensor], Tensor, Mapping[str, Tensor]], dict[str, Tensor]]
"""(x_t {m: [B, C, L]}, t [B], cond {m: [B, C_c, L_c]}) -> {m: prediction}."""

JointDenoiser = Callable[[Mapping[str, Tensor], Tensor], dict[str, Tensor]]
"""(x_t {m: [B, C, L]}, t [B]) -> {m: prediction}, the conditioning bound."""


def classifier_free(eps_cond: Tensor, eps_uncond: Tensor, w: float) -> Tensor:
    """(1 + w) eps(c) - w eps(0)."""
    return (1.0 + w) * eps_cond - w * eps_uncond


def guidance_passes(present: Iterable[str]) -> list[frozenset[str]]:
    """The conditioning sets the modality guidance needs: P, {}, then P \\ m for m in P (no repeats)."""
    present = list(dict.fromkeys(present))
    passes = [frozenset(present), frozenset()] + [frozenset(present) - {m} for m in present]
    return list(dict.fromkeys(passes))


def modality_guidance(
    outputs: Mapping[frozenset[str], Mapping[str, Tensor]], present: Iterable[str], w: float
) -> dict[str, Tensor]:
    """Combine the passes: eps~_m = o_P + w (o_P - o_{}) + [m in P] w (o_P - o_{P \\ m}) at m.

    Args:
        outputs: conditioning set -> the joint model's outputs {m: [B, C, L]}; must hold every set
            of `guidance_passes(present)`.
        present: the modalities whose conditioning is given.
    """
    present = frozenset(present)
    full, empty = outputs[present], outputs[frozenset()]
    guided = {}
    for m, o_full in full.items():
        g = o_full + w * (o_full - empty[m])
        if m in present:
            g = g + w * (o_full - outputs[present - {m}][m])
        guided[m] = g
    return guided


def classifier_free_denoiser(
    model: ConditionalDenoiser, cond: Tensor, w: float, *, batched: bool = True
) -> Callable[[Tensor, Tensor], Tensor]:
    """A denoiser (x_t, t) -> eps~ guided towards `cond` with weight w (w = 0: model(x_t, t, cond))."""
    _check_weight(w)
    if w == 0:
        return lambda x, t: model(x, t, cond)
    zeros = torch.zeros_like(cond)

    def guided(x: Tensor, t: Tensor) -> Tensor:
        if batched:
            out_c, out_u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, zeros])).chunk(2)
        else:
            out_c, out_u = model(x, t, cond), model(x, t, zeros)
        return classifier_free(out_c, out_u, w)

    return guided


def mask_conditions(cond: Mapping[str, Tensor], present: Iterable[str]) -> dict[str, Tensor]:
    """The conditionings with every modality outside `present` replaced by zeros."""
    present = set(present)
    unknown = present - set(cond)
    if unknown:
        raise ValueError(f"present modalities {sorted(unknown)} have no conditioning (known: {sorted(cond)})")
    return {m: c if m in present else torch.zeros_like(c) for m, c in cond.items()}


def modality_guided_denoiser(
    model: JointConditionalDenoiser,
    cond: Mapping[str, Tensor],
    present: Iterable[str],
    w: float,
    *,
    batched: bool = True,
) -> JointDenoiser:
    """A joint denoiser (x_t dict, t) -> guided predictions (w = 0: one conditional pass).

    Args:
        model: the joint conditional denoiser.
        cond: every modality's conditioning latent (a missing one may be anything: it is zeroed).
        present: the modalities whose conditioning is given.
        w: guidance weight >= 0.
        batched: run all passes as one call with the batch repeated (faster, more memory).
    """
    _check_weight(w)
    present = list(dict.fromkeys(present))
    if w == 0:
        masked = mask_conditions(cond, present)
        return lambda x, t: model(x, t, masked)
    passes = guidance_passes(present)
    conds = [mask_conditions(cond, s) for s in passes]

    def guided(x: Mapping[str, Tensor], t: Tensor) -> dict[str, Tensor]:
        if batched:
            n = len(passes)
            out = model(
                {m: torch.cat([v] * n) for m, v in x.items()},
                torch.cat([t] * n),
                {m: torch.cat([c[m] for c in conds]) for m in cond},
            )
            chunks = {m: v.chunk(n) for m, v in out.items()}
            outputs = {s: {m: chunks[m][i] for m in chunks} for i, s in enumerate(passes)}
        else:
            outputs = {s: model(x, t, c) for s, c in zip(passes, conds)}
        return modality_guidance(outputs, present, w)

    return guided


def _check_weight(w: float) -> None:
    if not w >= 0:
        raise ValueError(f"guidance weight must be >= 0, got {w}")
