"""Intermediate per-video products between raw data and clip stores.

Pseudo-depth (the `pseudo_depth` stage) writes one file per raw video:
`<paths.interim>/<dataset>/depth/<video_id>.npz` holding `depth`, uint8 [T, H, W] at the raw
frame size, and `attrs`, a JSON string describing how it was made (model, normalisation).
`prepare` reads them and crops/resizes them like the RGB frames they came from.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from syncvp.config.layout import depth_file  # where one file lives: the file contract (re-exported here)
from syncvp.io.atomic import atomic_path

__all__ = ["PER_VIDEO_KEYS", "depth_file", "depth_recipe", "read_depth", "write_depth"]


PER_VIDEO_KEYS = ("video_id", "label_key")  # attributes that name one video, not how its depth was made


def depth_recipe(attrs: dict) -> dict:
    """How a pseudo-depth file was made (model, input size, normalisation...): its attributes
    without the per-video ones (`PER_VIDEO_KEYS`), equal for every video of one dataset."""
    return {k: v for k, v in attrs.items() if k not in PER_VIDEO_KEYS}


def write_depth(path: Path, depth: np.ndarray, attrs: dict) -> Path:
    """Atomically write uint8 [T, H, W] depth maps with their attributes (byte-deterministic)."""
    if depth.dtype != np.uint8 or depth.ndim != 3:
        raise ValueError(f"pseudo-depth must be uint8 [T, H, W], got {depth.dtype} {depth.shape}")
    buf = io.BytesIO()
    np.savez_compressed(buf, depth=depth, attrs=np.array(json.dumps(attrs, sort_keys=True)))
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return Path(path)


def read_depth(path: Path) -> tuple[np.ndarray, dict]:
    """Read what `write_depth` wrote; a missing file names the stage to run."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run the `pseudo_depth` stage for this dataset first")
    with np.load(path) as data:
        return data["depth"], json.loads(str(data["attrs"]))
