"""Tiny stage-1/stage-2 diffusion setups: clip stores, random frozen autoencoders, small configs."""

from __future__ import annotations

import dataclasses

from syncvp.config import Params
from syncvp.models.autoencoder import AutoencoderSpec, TriplaneAutoencoder, save_autoencoder
from syncvp.training.seeded_init import build_seeded
from tests.training.stores import write_tiny_stores

ROLES = ("context", "future")


def tiny_diffusion_params(params: Params, **train_changes) -> Params:
    """`tiny_params` with a tiny autoencoder/UNet and a few training steps."""
    ae = dataclasses.replace(
        params.autoencoder,
        width=16,
        depth=1,
        heads=2,
        head_dim=8,
        axis_heads=1,
        axis_head_dim=8,
        axis_mlp=16,
        latent_channels=4,
    )
    unet = dataclasses.replace(
        params.unet, model_channels=8, channel_mult=(1, 2), num_heads=2, norm_groups=4, attention_resolutions=(2,)
    )
    joint = dataclasses.replace(params.joint, num_heads=2)
    common = dict(steps=6, batch_size=4, checkpoint_every=3, log_every=2, loss_curve_every=2, num_workers=0)
    common.update(train_changes)
    single = dataclasses.replace(params.train_single, **common)
    joint_train = dataclasses.replace(params.train_joint, **common)
    run = dataclasses.replace(params.run, device="cpu", threads=1)
    return dataclasses.replace(
        params, autoencoder=ae, unet=unet, joint=joint, train_single=single, train_joint=joint_train, run=run
    )


def write_autoencoders(params: Params, name: str = "synthetic", modalities=("rgb", "depth"), seed: int = 0) -> None:
    """Random frozen autoencoders for every modality and role, where the stages expect them (rgb
    has 3 channels, every other modality 1)."""
    ds = params.datasets[name]
    for i, m in enumerate(modalities):
        for j, (role, frames) in enumerate(zip(ROLES, (ds.context_frames, ds.future_frames))):
            spec = AutoencoderSpec.from_config(
                params.autoencoder, channels=3 if m == "rgb" else 1, frames=frames, resolution=ds.resolution
            )
            model = build_seeded(lambda: TriplaneAutoencoder(spec), seed + 10 * i + j)
            save_autoencoder(params.paths.model_dir(f"{name}-{m}-{role}") / "autoencoder.pt", model)


def setup(params: Params) -> Params:
    """Stores + autoencoders for the tiny synthetic dataset; returns the tiny params."""
    p = tiny_diffusion_params(params)
    write_tiny_stores(p.paths)
    write_autoencoders(p)
    return p


def setup_with_context_encoder(params: Params, encoder: str) -> Params:
    """`setup` with `diffusion.context_encoder` = encoder (and no residual, which needs "future")."""
    from tests.conftest import with_pipeline

    p = tiny_diffusion_params(params)
    p = with_pipeline(
        p,
        diffusion=dataclasses.replace(
            p.diffusion,
            context_encoder=encoder,
            residual=False,
            context_motion=encoder == "future" and p.diffusion.context_motion,
            context_extrapolation=p.diffusion.context_extrapolation if encoder == "future" else "hold",
            extrapolate_modalities=p.diffusion.extrapolate_modalities if encoder == "future" else None,
            extrapolation_blur=p.diffusion.extrapolation_blur if encoder == "future" else 0.0,
        ),
    )
    write_tiny_stores(p.paths)
    write_autoencoders(p)
    return p
