"""Assemble a `Predictor` from trained files: autoencoders, a diffusion model, the sampling section."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch
from torch import nn

from syncvp.config.diffusion import SamplingConfig
from syncvp.config.roles import RolePair
from syncvp.diffusion.factory import build_sampler
from syncvp.diffusion.target import DiffusionTarget
from syncvp.models.autoencoder import TriplaneAutoencoder, load_autoencoder
from syncvp.models.diffusion_file import ModelFileError, load_diffusion_model
from syncvp.prediction.rollout import Predictor
from syncvp.training.fastpath import prepare_model


def _check_autoencoder(ae: TriplaneAutoencoder, path: Path, modality: str, role: str, latent) -> None:
    if latent is not None and ae.latent_shape != latent:
        raise ModelFileError(
            f"{path}: the {role} autoencoder of {modality!r} has latent {ae.latent_shape}, the "
            f"diffusion model was trained on {latent} (retrain it or pick the matching files)"
        )


# layers whose every use is an op autocast runs in its low precision (convolutions, linear and
# matrix products), on CUDA and CPU alike; normalization layers are left alone (CUDA runs them in
# float32)
LOW_PRECISION_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def precast_weights(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> int:
    """Cast the weights and biases of `model`'s linear and convolution layers to `dtype` once, in
    place, for a frozen network that is only called under autocast to `dtype` (the sampler's
    denoiser with `sampling.precision: bf16`). Autocast casts a float32 weight at every use
    (it keeps the cast only for parameters that require grad, and a loaded model's do not), and
    the cast is the same rounding as `.to(dtype)`, so every layer computes with the same values
    bit for bit, without the cast kernels (on a GPU, 544 of the paper-size joint model's 1,818
    kernels per call, `benchmarks/roofline.py`) and with half the weight memory. Calling the
    model without autocast afterwards fails on the dtype mismatch. Returns the tensors cast."""
    cast = 0
    for module in model.modules():
        if isinstance(module, LOW_PRECISION_LAYERS):
            for p in module.parameters(recurse=False):
                if p.dtype == torch.float32:
                    p.data = p.data.to(dtype)
                    cast += 1
    return cast


def context_role(model: str | Path) -> str:
    """The autoencoder role whose files encode a diffusion model's context frames: "context", or
    "future" when the model was trained with `diffusion.context_encoder: future` (then the
    context autoencoder is neither needed nor trained)."""
    return "future" if load_diffusion_model(model).diffusion.context_encoder == "future" else "context"


def completion_options(predictor, sampling: SamplingConfig) -> dict:
    """`Predictor.complete`'s sampler, resample and known_as_context from the `sampling` section's
    completion keys (the predictor's sampler with `completion_steps`, null = `steps`)."""
    return {
        "sampler": dataclasses.replace(predictor.sampler, steps=sampling.completion_steps or sampling.steps),
        "resample": sampling.completion_resample,
        "known_as_context": sampling.completion == "context",
    }


def load_predictor(
    model: str | Path,
    autoencoders: Mapping[str, RolePair[str | Path]],
    sampling: SamplingConfig,
    *,
    device: str | torch.device = "cpu",
    quantize: Iterable[str] = (),
    same_noise: bool | None = None,
    compile: bool = False,
    channels_last: bool = False,
    cuda_graphs: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Predictor:
    """A predictor from a diffusion-model file and its autoencoders.

    Args:
        model: a joint (stage 2) or stage-1 file written by `save_diffusion_model`.
        autoencoders: {modality: its context and future autoencoder files} for every modality
            the model predicts (for a model with `context_encoder: future` the context file is
            not read: the future autoencoder encodes the context too).
        sampling: the `sampling` params section (method, steps, eta, clamping, guidance weight,
            precision). With `precision: bf16` the diffusion model's linear and convolution
            weights are stored in bf16 from loading on (`precast_weights`: the values autocast
            would cast them to at every call, so the samples are unchanged).
        quantize: modalities snapped to uint8 levels after each chunk (image modalities).
        same_noise: share sampling noise between modalities; None = the model's `joint.same_noise`.
        compile: `torch.compile` the diffusion model, the network the sampler calls at every
            step (params `run.compile`; `syncvp.training.fastpath.prepare_model`). It compiles
            at its first call, frozen (its weights become constants of the compiled graph: do
            not change them afterwards); where that fails it runs eager from then on, with one
            warning through `warn`. The autoencoders (called once per chunk) stay eager.
        channels_last: the diffusion model's 2-D convolutions in channels-last memory format
            (params `run.channels_last`); the autoencoders keep the default layout.
        cuda_graphs: replay the sampler's denoiser from one CUDA graph per sampled chunk on a
            CUDA device (params `run.cuda_graphs`; `Predictor.cuda_graphs`); a no-op elsewhere.
        warn: receives the compile guard's one warning and that of a failed CUDA graph capture
            (None: the `syncvp.training.fastpath` / `syncvp.prediction.rollout` loggers).
    """
    f = load_diffusion_model(model)
    if f.diffusion.context_encoder == "future" and "context_frames" not in f.meta:
        raise ModelFileError(f"{f.path}: a model with context_encoder 'future' must record meta['context_frames']")
    if set(autoencoders) != set(f.modalities):
        raise ModelFileError(
            f"{f.path} predicts {list(f.modalities)}; autoencoders were given for {sorted(autoencoders)}"
        )
    context, future = {}, {}
    by_future = f.diffusion.context_encoder == "future"  # the conditioning lies in the future latent space
    for m in f.modalities:
        future_shape, context_shape = f.shapes[m]
        roles = [("future", autoencoders[m].future, future_shape, future)]
        if not by_future:
            roles.insert(0, ("context", autoencoders[m].context, context_shape, context))
        for role, path, latent, into in roles:
            path = Path(path)
            if not path.is_file():
                raise ModelFileError(f"{path} does not exist: train the {role} autoencoder of {m!r} first")
            into[m] = load_autoencoder(path, map_location=device)
            _check_autoencoder(into[m], path, m, role, latent)
        if by_future:
            context[m] = future[m]
    if same_noise is None:
        same_noise = f.joint.same_noise if f.joint is not None else True
    sampler = build_sampler(sampling, f.diffusion, same_noise=same_noise)
    target = DiffusionTarget.from_dict(f.meta.get("target"))
    if target.residual and sampling.guidance_weight > 0:
        raise ModelFileError(
            f"{f.path} diffuses the change from its conditioning (diffusion.residual): guidance "
            f"mixes predictions of different conditionings, so sampling.guidance_weight must be 0, "
            f"got {sampling.guidance_weight}"
        )
    network = f.build(device)
    if sampling.precision == "bf16":  # every call is under bf16 autocast: cast the weights once
        precast_weights(network, torch.bfloat16)
    fast = {"warn": warn} if warn is not None else {}
    prepare_model(network, channels_last=channels_last, compile=compile, frozen=True, **fast)  # weights fixed
    return Predictor(
        context_autoencoders=context,
        future_autoencoders=future,
        model=network,
        sampler=sampler,
        guidance_weight=sampling.guidance_weight,
        quantize=frozenset(quantize),
        context_encoder=f.diffusion.context_encoder,
        context_motion=f.diffusion.context_motion,
        context_extrapolation=f.diffusion.extrapolations(f.modalities),
        extrapolation_blur=f.diffusion.extrapolation_blur,
        anchor=sampling.anchor,
        target=target,
        context_frames=int(f.meta["context_frames"]) if by_future else None,
        precision=sampling.precision,
        cuda_graphs=cuda_graphs,
        **fast,
    )
