"""A tiny test store (rgb + depth, 8 px) and tiny random models in the project's file layout."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from syncvp.config.evaluate import EvaluateConfig, NoiseConfig
from syncvp.config.runtime import WeightsConfig
from syncvp.data import store
from syncvp.models.autoencoder import save_autoencoder
from syncvp.models.export import save_diffusion_model
from tests.conftest import tiny_dataset
from tests.prediction.conftest import (DIFFUSION, JOINT, SAMPLING, UNET, autoencoders, joint_model,  # noqa: F401
                                       one_torch_thread, shapes, single_model)

VIDEOS, FRAMES, SIZE = 3, 8, 8
NO_WEIGHTS = WeightsConfig(depth_anything_vits=None, depth_anything_vitb=None, depth_anything_vitl=None, i3d=None,
                           lpips_alexnet=None, lpips_vgg16=None)


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
    ds = store.build_dataset({"rgb": rgb, "depth": depth}, dataset=name, split="test",
                             video_ids=[f"vid{i}" for i in range(VIDEOS)])
    return store.write_store(paths.store(name, "test"), ds).path


def write_models(paths, name: str = "synthetic") -> None:
    """Autoencoders, stage-1 models and a joint model with random weights, where the stages put them."""
    ctx, fut = autoencoders(context_frames=2, future_frames=3)
    for m in ctx:
        save_autoencoder(paths.model_dir(f"{name}-{m}-context") / "autoencoder.pt", ctx[m])
        save_autoencoder(paths.model_dir(f"{name}-{m}-future") / "autoencoder.pt", fut[m])
        save_diffusion_model(paths.model_dir(f"{name}-{m}") / "diffusion.pt", single_model(ctx, fut, m),
                             shapes=shapes(ctx, fut, (m,)), unet=UNET, diffusion=DIFFUSION)
    save_diffusion_model(paths.models / name / "joint.pt", joint_model(ctx, fut), shapes=shapes(ctx, fut),
                         unet=UNET, diffusion=DIFFUSION, joint=JOINT)


def evaluate_config(**changes) -> EvaluateConfig:
    base = dict(model="joint", split="test", videos=None, batch_size=2, trajectories=2, reduce="both",
                conditions=("all", "depth"), noise=NoiseConfig(modality=None, sigmas=()),
                protocols=("paper", "standard"), metrics=("fvd", "ssim", "psnr", "lpips", "l2", "l1"),
                samples=2, seed=0)
    return EvaluateConfig(**{**base, **changes})


@pytest.fixture
def setup(tiny_params, tmp_path):
    """(params with an 8 px dataset of 2 + 3-frame chunks and a 5-frame rollout, sampling, paths) + files."""
    ds = dataclasses.replace(tiny_dataset(tiny_params), resolution=(SIZE, SIZE), context_frames=2, future_frames=3,
                             rollout_frames=5)
    paths = tiny_params.paths
    write_test_store(paths)
    write_models(paths)
    return ds, SAMPLING, paths
