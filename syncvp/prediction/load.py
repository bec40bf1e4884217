"""Assemble a `Predictor` from trained files: autoencoders, a diffusion model, the sampling section."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import torch

from syncvp.config.diffusion import SamplingConfig
from syncvp.diffusion.factory import build_sampler
from syncvp.models.autoencoder import TriplaneAutoencoder, load_autoencoder
from syncvp.models.export import ModelFileError, load_diffusion_model
from syncvp.prediction.rollout import Predictor


def _check_autoencoder(ae: TriplaneAutoencoder, path: Path, modality: str, role: str, latent) -> None:
    if latent is not None and ae.latent_shape != latent:
        raise ModelFileError(f"{path}: the {role} autoencoder of {modality!r} has latent {ae.latent_shape}, the "
                             f"diffusion model was trained on {latent} (retrain it or pick the matching files)")


def load_predictor(model: str | Path, autoencoders: Mapping[str, tuple[str | Path, str | Path]],
                   sampling: SamplingConfig, *, device: str | torch.device = "cpu",
                   quantize: Iterable[str] = (), same_noise: bool | None = None) -> Predictor:
    """A predictor from a diffusion-model file and its autoencoders.

    Args:
        model: a joint (stage 2) or stage-1 file written by `save_diffusion_model`.
        autoencoders: {modality: (context autoencoder file, future autoencoder file)} for every
            modality the model predicts.
        sampling: the `sampling` params section (method, steps, eta, clamping, guidance weight).
        quantize: modalities snapped to uint8 levels after each chunk (image modalities).
        same_noise: share sampling noise between modalities; None = the model's `joint.same_noise`.
    """
    f = load_diffusion_model(model)
    if set(autoencoders) != set(f.modalities):
        raise ModelFileError(f"{f.path} predicts {list(f.modalities)}; autoencoders were given for "
                             f"{sorted(autoencoders)}")
    context, future = {}, {}
    for m in f.modalities:
        future_shape, context_shape = f.shapes[m]
        for role, path, latent, into in (("context", autoencoders[m][0], context_shape, context),
                                         ("future", autoencoders[m][1], future_shape, future)):
            path = Path(path)
            if not path.is_file():
                raise ModelFileError(f"{path} does not exist: train the {role} autoencoder of {m!r} first")
            into[m] = load_autoencoder(path, map_location=device)
            _check_autoencoder(into[m], path, m, role, latent)
    if same_noise is None:
        same_noise = f.joint.same_noise if f.joint is not None else True
    sampler = build_sampler(sampling, f.diffusion, same_noise=same_noise)
    return Predictor(context_autoencoders=context, future_autoencoders=future, model=f.build(device),
                     sampler=sampler, guidance_weight=sampling.guidance_weight, quantize=frozenset(quantize))
