"""A tiny clip store (rgb + depth, 16 px, 12 frames) written in a blink, for training tests."""

from __future__ import annotations

import numpy as np

from syncvp.data import store


def write_tiny_stores(paths, name: str = "synthetic", videos: int = 3, frames: int = 12, size: int = 16) -> None:
    """train.nc and val.nc of `name` under `paths.processed`: shifting noise patterns."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        base = rng.integers(0, 256, (videos, 1, size, size, 3))
        shift = np.arange(frames)[None, :, None, None, None] * 9
        rgb = ((base + shift) % 256).astype(np.uint8)
        ds = store.build_dataset({"rgb": rgb, "depth": rgb[..., 0].copy()}, dataset=name, split=split)
        store.write_store(paths.store(name, split), ds)
