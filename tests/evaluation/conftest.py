"""A tiny test store (rgb + depth, 8 px) and tiny random models in the project's file layout."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from syncvp.config.evaluate import EvaluateConfig, NoiseConfig
from syncvp.config.runtime import WeightsConfig
from syncvp.data import store
from syncvp.models.autoencoder import save_autoencoder
from syncvp.models.diffusion_file import save_diffusion_model
from syncvp.models.factory import build_joint_unet
from tests.conftest import tiny_dataset
from tests.models.tiny import perturb
from tests.prediction.conftest import DIFFUSION, JOINT, SAMPLING, UNET, autoencoder, shapes, single_model  # noqa: F401


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs with one torch thread (the root conftest's fixture)."""
    yield


VIDEOS, FRAMES, SIZE = 3, 8, 8
NO_WEIGHTS = WeightsConfig(
    depth_anything_vits=None,
    depth_anything_vitb=None,
    depth_anything_vitl=None,
    i3d=None,
    lpips_alexnet=None,
    lpips_vgg16=None,
)


def moving_videos(videos: int = VIDEOS, frames: int = FRAMES, size: int = SIZE, static: bool = False):
    """rgb [V, T, H, W, 3] and depth [V, T, H, W] uint8: noise patterns shifting by 9 levels per frame."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (videos, 1, size, size, 3))
    shift = 0 if static else np.arange(frames)[None, :, None, None, None] * 9
    rgb = ((base + shift) % 256).astype(np.uint8)
    rgb = np.broadcast_to(rgb, (videos, frames, size, size, 3)).copy()
    return rgb, rgb[..., 0].copy()


def write_test_store(paths, name: str = "synthetic", static: bool = False) -> Path:
    rgb, depth = moving_videos(static=static)
    ds = store.build_dataset(
        {"rgb": rgb, "depth": depth}, dataset=name, split="test", video_ids=[f"vid{i}" for i in range(VIDEOS)]
    )
    return store.write_store(paths.store(name, "test"), ds).path


def write_models(paths, name: str = "synthetic", channels: dict[str, int] | None = None) -> None:
    """Autoencoders (2-frame context, 3-frame future), stage-1 models and a joint model with random
    weights, where the stages put them; `channels`: modality -> channels (default rgb 3, depth 1)."""
    channels = channels or {"rgb": 3, "depth": 1}
    ctx = {m: autoencoder(c, 2, seed=i) for i, (m, c) in enumerate(channels.items())}
    fut = {m: autoencoder(c, 3, seed=10 + i) for i, (m, c) in enumerate(channels.items())}
    for m in ctx:
        save_autoencoder(paths.model_dir(f"{name}-{m}-context") / "autoencoder.pt", ctx[m])
        save_autoencoder(paths.model_dir(f"{name}-{m}-future") / "autoencoder.pt", fut[m])
        save_diffusion_model(
            paths.model_dir(f"{name}-{m}") / "diffusion.pt",
            single_model(ctx, fut, m),
            shapes=shapes(ctx, fut, (m,)),
            unet=UNET,
            diffusion=DIFFUSION,
        )
    torch.manual_seed(0)
    joint = perturb(build_joint_unet(UNET, JOINT, shapes(ctx, fut, tuple(ctx))), 0).eval()
    save_diffusion_model(
        paths.models / name / "joint.pt",
        joint,
        shapes=shapes(ctx, fut, tuple(ctx)),
        unet=UNET,
        diffusion=DIFFUSION,
        joint=JOINT,
    )


def evaluate_config(**changes) -> EvaluateConfig:
    """A test evaluation; no references besides copy_last unless asked (`baselines`, `alignment`)."""
    base = dict(
        model="joint",
        split="test",
        videos=None,
        batch_size=2,
        trajectories=2,
        reduce="both",
        conditions=("all", "depth"),
        noise=NoiseConfig(modality=None, sigmas=()),
        protocols=("paper", "standard"),
        metrics=("fvd", "ssim", "psnr", "lpips", "l2", "l1"),
        baselines=(),
        samples=2,
        seed=0,
    )
    return EvaluateConfig(**{**base, **changes})


@pytest.fixture
def setup(tiny_params, tmp_path):
    """(params with an 8 px dataset of 2 + 3-frame chunks and a 5-frame rollout, sampling, paths) + files."""
    ds = dataclasses.replace(
        tiny_dataset(tiny_params), resolution=(SIZE, SIZE), context_frames=2, future_frames=3, rollout_frames=5
    )
    paths = tiny_params.paths
    write_test_store(paths)
    write_models(paths)
    return ds, SAMPLING, paths


def field_dataset(repo_params, paths):
    """The era5_synthetic dataset at the tiny evaluation sizes, with its field store and models written."""
    ds = dataclasses.replace(
        repo_params.datasets["era5_synthetic"], resolution=(8, 8), context_frames=2, future_frames=3, rollout_frames=5
    )
    write_field_store(paths)
    write_models(paths, "era5_synthetic", channels={"t2m": 1, "sp": 1})
    return ds


def write_field_store(paths, name: str = "era5_synthetic") -> Path:
    """t2m (K) and sp (Pa) fields with a fixed sea mask (NaN where invalid), 8 px."""
    rng = np.random.default_rng(1)
    valid = np.ones((VIDEOS, FRAMES, SIZE, SIZE), np.uint8)
    valid[:, :, :, :3] = 0
    arrays, attrs = {}, {}
    for m, (lo, hi, units) in {"t2m": (250.0, 300.0, "K"), "sp": (9.0e4, 1.05e5, "Pa")}.items():
        x = (lo + (hi - lo) * rng.random((VIDEOS, FRAMES, SIZE, SIZE))).astype(np.float32)
        arrays[m] = np.where(valid > 0, x, np.nan).astype(np.float32)
        attrs[m] = {"units": units, "norm_min": lo, "norm_max": hi}
    ds = store.build_dataset(arrays, dataset=name, split="test", modality_attrs=attrs, valid=valid)
    return store.write_store(paths.store(name, "test"), ds).path
