"""Pure array transforms between stored values and model space, plus crop/resize.

Model space is [-1, 1] for every modality: uint8 images map by `x / 127.5 - 1`; fields are
min-max normalised with the store's `norm_min`/`norm_max` and mapped to [-1, 1], and missing
values (NaN, or `valid == 0`) become -1 (normalised 0, the paper's "NaN -> 0").
"""

from __future__ import annotations

from typing import Literal

import cv2
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


def class_gray(ids: np.ndarray, num_classes: int) -> np.ndarray:
    """Class ids 0..n-1 -> gray 0..255 (id / (n - 1) * 255; SYNTHIA's 16 classes give id * 17)."""
    return np.round(ids.astype(np.float64) * 255.0 / (num_classes - 1)).astype(np.uint8)


def center_crop(frames: np.ndarray, aspect: float) -> np.ndarray:
    """Centre-crop [T, H, W] or [T, H, W, C] frames to the largest window of width/height = aspect."""
    h, w = frames.shape[1], frames.shape[2]
    if w / h > aspect:
        new_w = max(1, int(round(h * aspect)))
        x0 = (w - new_w) // 2
        return frames[:, :, x0:x0 + new_w]
    new_h = max(1, int(round(w / aspect)))
    y0 = (h - new_h) // 2
    return frames[:, y0:y0 + new_h]


_INTERP = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
           "nearest": cv2.INTER_NEAREST_EXACT}


def resize_frames(frames: np.ndarray, size: tuple[int, int], mode: Literal["area", "bilinear", "bicubic", "nearest"]) -> np.ndarray:
    """Resize [T, H, W] or [T, H, W, C] frames to `size` = (height, width).

    Use `nearest` for label maps (never blends class ids) and `area` to shrink images.
    """
    h, w = size
    if frames.shape[1:3] == (h, w):
        return frames
    out = [cv2.resize(f, (w, h), interpolation=_INTERP[mode]) for f in frames]
    return np.stack(out).reshape((len(frames), h, w) + frames.shape[3:])
