"""Pure array transforms for the data stages: class ids to gray, centre crop and resize.

The maps between stored values and model space ([-1, 1]; `image_to_model`, `model_to_image`,
`field_to_model`, `model_to_field`, `FIELD_FILL`) live in `syncvp.io.model_space`, where the
metrics reach them too; they are re-exported here for the data loaders.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from syncvp.io.model_space import FIELD_FILL, field_to_model, image_to_model, model_to_field, model_to_image

__all__ = ["FIELD_FILL", "image_to_model", "model_to_image", "field_to_model", "model_to_field", "class_gray",
           "center_crop", "resize_frames"]


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
