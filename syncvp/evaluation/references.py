"""The reference predictions scored next to the model (see `syncvp.evaluation.plan`).

- `single-<condition>`: each modality by its own stage-1 model, with the sampling stream
  (seed, "rollout", batch, modality) of a stage-1 evaluation. An observed modality is conditioned
  on its GT context; an unobserved one is predicted from zero conditioning for the first chunk,
  then from its own predictions (as the joint rollout treats a missing modality). A modality's
  prediction therefore depends only on (batch, modality, observed or not): `single-rgb`'s rgb is
  `single-all`'s rgb, bit for bit, and is sampled once per batch and process (`_PARTS`).
- `copy_last`: the last GT context frame repeated (uint8 for images, exact in every mode).
- `flow`: the last GT context frame carried along its optical flow from the previous one, frame k
  warped back by k times the flow (`syncvp.models.context.flow_extrapolate`, the extrapolation a
  model with `diffusion.context_extrapolation: flow` starts from), over the whole rollout at once;
  floats, quantised by each mode's rounding when scored, as predictions are.
- `autoencoder`: the GT future cut into chunks of `future_frames`, each through the modality's
  future autoencoder, decode(encode(chunk)), clamped; a short last chunk is padded by repeating
  its last GT frame and cut back after decoding, clamped, not quantised (each mode quantises it
  with its rounding when scoring, and a gray modality of a 3-channel network is decoded at 3
  channels for a mode with `network_channels`, as predictions are). The ceiling of any latent
  model (its error is the autoencoder's alone).
- `ground_truth`: the GT future frames themselves (uint8), scored only for `alignment`.

Every function returns model-space (or uint8) videos {m: [B, C, rollout_frames, H, W]}, or for
stage-1 predictions [B, N, C, rollout_frames, H, W], on the CPU; stage-1 predictions and the
autoencoder ceiling come per fed-back quantisation ({Quantisation: ...}, one per mode's).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from syncvp.evaluation.plan import EvaluationPlan, Setting
from syncvp.metrics.images import Quantisation, ground_truth
from syncvp.metrics.protocol import copy_last_frame
from syncvp.models.autoencoder import TriplaneAutoencoder
from syncvp.models.context import flow_extrapolate
from syncvp.prediction import Predictor
from syncvp.prediction.rollout import network_view
from syncvp.progress import ProgressFn, no_progress
from syncvp.seeding import torch_generator

# (fingerprint, device, batch) -> {(modality, observed): [B, N, C, T, H, W]}: one batch's stage-1
# predictions, shared by its single-<condition> settings (the flow runs the settings of a batch together)
_PARTS: dict[tuple[str, str, int], dict[tuple, dict[Quantisation, Tensor]]] = {}


def single_rollout(
    plan: EvaluationPlan,
    predictor: Predictor,
    modality: str,
    context: Tensor | None,
    index: int,
    quantisations: Sequence[Quantisation] = (Quantisation(),),
    progress: ProgressFn = no_progress,
) -> dict[Quantisation, Tensor]:
    """One modality by its stage-1 predictor from its GT context [B, C, T_c, H, W] (None: unobserved)
    -> {q: [B, N, C, rollout_frames, H, W]} on the CPU, one rollout per fed-back quantisation."""
    gen = torch_generator(plan.evaluate.seed, "rollout", index, modality, device=plan.device)
    batch = plan.batches[index][1] - plan.batches[index][0]
    ctx, present = ({modality: context}, (modality,)) if context is not None else ({}, ())
    out = predictor.rollouts(
        ctx,
        plan.config.rollout_frames,
        generator=gen,
        quantisations=quantisations,
        present=present,
        trajectories=plan.evaluate.trajectories,
        progress=progress,
        batch=batch,
    )
    return {q: run[modality].float().cpu() for q, run in out.items()}


def single_predictions(
    plan: EvaluationPlan,
    predictors: dict[str, Predictor],
    setting: Setting,
    context: dict[str, Tensor],
    index: int,
    quantisations: Sequence[Quantisation] = (Quantisation(),),
    progress: ProgressFn = no_progress,
) -> dict[Quantisation, dict[str, Tensor]]:
    """{q: {m: [B, N, C, T, H, W]}} of a `single-<condition>` setting (stage-1 predictors keyed by
    modality), one rollout per fed-back quantisation."""
    key = (plan.fingerprint, plan.device, index)
    if key not in _PARTS:
        _PARTS.clear()  # one batch at a time: bounded memory
        _PARTS[key] = {}
    parts = _PARTS[key]
    out: dict[Quantisation, dict[str, Tensor]] = {q: {} for q in quantisations}
    for m in plan.modalities:
        observed = m in setting.present
        key = (m, observed, tuple(quantisations))
        if key not in parts:
            parts[key] = single_rollout(
                plan, predictors[m], m, context[m] if observed else None, index, quantisations, progress
            )
        for q in quantisations:
            out[q][m] = parts[key][q]
    return out


def copy_last(plan: EvaluationPlan, clips: dict[str, Tensor]) -> dict[str, Tensor]:
    """The last GT context frame repeated (uint8 for image modalities)."""
    tc, frames = plan.config.context_frames, plan.config.rollout_frames
    out = {}
    for m in plan.modalities:
        ctx = clips[m][:, :, :tc]
        out[m] = copy_last_frame(ground_truth(ctx) if plan.kinds[m] == "image" else ctx, frames)
    return out


def flow_extrapolation(plan: EvaluationPlan, clips: dict[str, Tensor]) -> dict[str, Tensor]:
    """The last GT context frame carried along its optical flow for `rollout_frames` frames."""
    tc, frames = plan.config.context_frames, plan.config.rollout_frames
    out = {}
    for m in plan.modalities:
        out[m] = flow_extrapolate(torch.nan_to_num(clips[m][:, :, :tc].float()), frames).clamp(-1, 1)
    return out


@torch.no_grad()
def autoencode_future(
    autoencoder: TriplaneAutoencoder, future: Tensor, device: str | torch.device = "cpu", network_channels: bool = False
) -> Tensor:
    """GT future [B, C, T, H, W] in [-1, 1] -> decode(encode(chunk)) per chunk of `autoencoder.spec.frames`
    frames, clamped to [-1, 1], [B, C, T, H, W] float32 on the CPU (a short last chunk is padded with
    its last frame, then cut; `network_channels`: decoded at the network's channels, 3 for gray_to_rgb)."""
    size = autoencoder.spec.frames
    decoder = network_view(autoencoder) if network_channels else autoencoder
    parts = []
    for start in range(0, future.shape[2], size):
        chunk = future[:, :, start : start + size]
        n = chunk.shape[2]
        padded = torch.cat([chunk, chunk[:, :, -1:].expand(-1, -1, size - n, -1, -1)], dim=2)
        video = decoder.decode(autoencoder.encode(padded.to(device)))
        parts.append(video[:, :, :n].clamp(-1, 1).float().cpu())
    return torch.cat(parts, dim=2)


def autoencoder_ceiling(
    plan: EvaluationPlan,
    autoencoders: dict[str, TriplaneAutoencoder],
    clips: dict[str, Tensor],
    quantisations: Sequence[Quantisation] = (Quantisation(),),
) -> dict[Quantisation, dict[str, Tensor]]:
    """The GT future through each modality's future autoencoder, per quantisation {q: {m: video}}
    (decoded at the network's channels for `q.network_channels`; not quantised: scoring does it)."""
    tc = plan.config.context_frames
    decoded: dict[tuple[str, bool], Tensor] = {}
    out: dict[Quantisation, dict[str, Tensor]] = {}
    for q in quantisations:
        out[q] = {}
        for m in plan.modalities:
            ae = autoencoders[m]
            wide = q.network_channels and ae.spec.net_channels != ae.spec.channels
            if (m, wide) not in decoded:
                decoded[(m, wide)] = autoencode_future(ae, clips[m][:, :, tc:], plan.device, wide)
            out[q][m] = decoded[(m, wide)]
    return out


def ground_truth_future(plan: EvaluationPlan, clips: dict[str, Tensor]) -> dict[str, Tensor]:
    """The GT future frames (uint8 for image modalities)."""
    tc = plan.config.context_frames
    return {
        m: ground_truth(clips[m][:, :, tc:]) if plan.kinds[m] == "image" else clips[m][:, :, tc:]
        for m in plan.modalities
    }
