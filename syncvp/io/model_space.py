"""Model space: how the values the clip store holds map to what the models see, and back.

Model space is [-1, 1] for every modality: uint8 images map by `x / 127.5 - 1`; fields are
min-max normalised with the store's `norm_min`/`norm_max` and mapped to [-1, 1], and missing
values (NaN, or `valid == 0`) become -1 (normalised 0, the paper's "NaN -> 0"). The data loaders
map into it (`syncvp.data.transforms`) and the metrics map predictions back out of it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

FIELD_FILL = -1.0


def image_to_model(x: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return x.astype(np.float32) / 127.5 - 1.0


def model_to_image(x: np.ndarray, rounding: Literal["round", "truncate"] = "round") -> np.ndarray:
    """float [-1, 1] -> uint8. `truncate` reproduces the paper's `.type(torch.uint8)` cast."""
    v = (np.clip(x, -1.0, 1.0) + 1.0) * 127.5
    v = np.floor(v) if rounding == "truncate" else np.round(v)
    return v.astype(np.uint8)


def field_to_model(x: np.ndarray, lo: float, hi: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Physical units -> [-1, 1] by min-max; NaN and invalid points -> -1."""
    v = (2.0 * (x.astype(np.float64) - lo) / (hi - lo) - 1.0).astype(np.float32)
    bad = ~np.isfinite(v)
    if valid is not None:
        bad |= valid == 0
    return np.where(bad, np.float32(FIELD_FILL), v)


def model_to_field(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """[-1, 1] -> physical units (the inverse of `field_to_model` on valid points)."""
    return ((np.asarray(v, dtype=np.float64) + 1.0) / 2.0 * (hi - lo) + lo).astype(np.float32)
