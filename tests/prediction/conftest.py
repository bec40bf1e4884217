"""Tiny autoencoders and diffusion models (random weights) for prediction tests."""

from __future__ import annotations

import pytest
import torch

from syncvp.config import RolePair
from syncvp.config.diffusion import PAPER_DIFFUSION, DiffusionConfig, JointConfig, SamplingConfig, UNetConfig
from syncvp.models.autoencoder import AutoencoderSpec, TriplaneAutoencoder, save_autoencoder
from syncvp.models.diffusion_file import save_diffusion_model
from syncvp.models.factory import build_joint_unet, build_unet
from tests.models.tiny import perturb

CHANNELS = {"rgb": 3, "depth": 1}
UNET = UNetConfig(
    model_channels=8,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(1,),
    num_heads=2,
    norm_groups=4,
    dropout=0.0,
    condition_layout="per_plane",
)
DIFFUSION = DiffusionConfig(**{**PAPER_DIFFUSION, "timesteps": 100})
JOINT = JointConfig(
    cross_attention="deep",
    deep_levels=1,
    split_planes=True,
    normalize=True,
    num_heads=2,
    shared_weights=False,
    same_noise=True,
    stca_layout="fixed",
    locality=0.0,
    cross_inputs=False,
)
SAMPLING = SamplingConfig(
    method="ddim",
    steps=3,
    eta=1.0,
    clip_x0=True,
    rederive_eps=False,
    guidance_weight=0.0,
    anchor="latent",
    completion="context",
    completion_steps=None,
    completion_resample=1,
    precision="fp32",
)


def autoencoder(channels: int, frames: int, seed: int) -> TriplaneAutoencoder:
    spec = AutoencoderSpec.from_dict(
        dict(
            channels=channels,
            frames=frames,
            resolution=(8, 8),
            width=8,
            depth=1,
            heads=1,
            head_dim=8,
            ff_mult=2,
            axis_depth=1,
            axis_heads=1,
            axis_head_dim=8,
            axis_mlp=8,
            patch_size=4,
            latent_channels=2,
            gray_to_rgb=False,
            axis_token="clean",
        )
    )
    torch.manual_seed(seed)
    return TriplaneAutoencoder(spec).eval().requires_grad_(False)


def autoencoders(context_frames: int = 2, future_frames: int = 3):
    ctx = {m: autoencoder(c, context_frames, seed=i) for i, (m, c) in enumerate(CHANNELS.items())}
    fut = {m: autoencoder(c, future_frames, seed=10 + i) for i, (m, c) in enumerate(CHANNELS.items())}
    return ctx, fut


def shapes(ctx, fut, modalities=tuple(CHANNELS)):
    return {m: (fut[m].latent_shape, ctx[m].latent_shape) for m in modalities}


def joint_model(ctx, fut, seed: int = 0):
    torch.manual_seed(seed)
    model = build_joint_unet(UNET, JOINT, shapes(ctx, fut))  # zero-initialised heads: perturb so outputs vary
    return perturb(model, seed).eval().requires_grad_(False)


def single_model(ctx, fut, modality: str, seed: int = 0):
    torch.manual_seed(seed)
    model = build_unet(UNET, fut[modality].latent_shape, ctx[modality].latent_shape)
    return perturb(model, seed).eval().requires_grad_(False)


def context_clips(batch: int = 2, frames: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.rand(batch, c, frames, 8, 8, generator=g) * 2 - 1 for m, c in CHANNELS.items()}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs with one torch thread (the root conftest's fixture)."""
    yield


def tiny_predictor(joint: bool = True, device: str = "cpu", **options):
    """A Predictor of the tiny test networks (joint, or the stage-1 depth model) on `device`,
    sampling with SAMPLING; `options` are further Predictor fields (precision, cuda_graphs, ...)."""
    from syncvp.diffusion.factory import build_sampler
    from syncvp.prediction import Predictor

    ctx, fut = autoencoders()
    if joint:
        model = joint_model(ctx, fut)
    else:
        model = single_model(ctx, fut, "depth")
        ctx, fut = {"depth": ctx["depth"]}, {"depth": fut["depth"]}
    return Predictor(
        context_autoencoders={m: ae.to(device) for m, ae in ctx.items()},
        future_autoencoders={m: ae.to(device) for m, ae in fut.items()},
        model=model.to(device),
        sampler=build_sampler(SAMPLING, DIFFUSION, same_noise=True),
        **options,
    )


@pytest.fixture
def joint_files(tmp_path):
    """A tiny joint model file and its autoencoder files (`load_predictor`'s first two arguments)."""
    ctx, fut = autoencoders()
    model = tmp_path / "joint.pt"
    save_diffusion_model(
        model, joint_model(ctx, fut), shapes=shapes(ctx, fut), unet=UNET, diffusion=DIFFUSION, joint=JOINT
    )
    aes = {
        m: RolePair(
            context=save_autoencoder(tmp_path / f"{m}-context.pt", ctx[m]),
            future=save_autoencoder(tmp_path / f"{m}-future.pt", fut[m]),
        )
        for m in ("rgb", "depth")
    }
    return model, aes
