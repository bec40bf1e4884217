"""Pictures people would rather look at than read: frame grids (PNG) and animations (GIF)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from syncvp.io.atomic import atomic_path


def to_rgb(
    frames: np.ndarray,
    kind: str = "image",
    lo: float | None = None,
    hi: float | None = None,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Stored frames [T, H, W(, C)] -> displayable uint8 [T, H, W, 3].

    Gray images are replicated, fields are colour-mapped over [lo, hi] (turbo) with invalid
    points drawn mid-gray.
    """
    if kind == "image":
        x = frames if frames.ndim == 4 else frames[..., None]
        return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x[..., :3]
    x = frames[..., 0] if frames.ndim == 4 else frames
    lo = np.nanmin(x) if lo is None else lo
    hi = np.nanmax(x) if hi is None else hi
    u8 = (np.clip((np.nan_to_num(x, nan=lo) - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)
    rgb = np.stack([cv2.applyColorMap(f, cv2.COLORMAP_TURBO)[..., ::-1] for f in u8])
    bad = ~np.isfinite(x) if valid is None else (valid == 0) | ~np.isfinite(x)
    rgb[bad] = 128
    return rgb


def grid(rows: Sequence[np.ndarray], pad: int = 1, scale: int = 1) -> np.ndarray:
    """Tile rows of frames ([T, H, W, 3] each, equal H/W) into one uint8 image with white gaps."""
    t_max = max(len(r) for r in rows)
    h, w = rows[0].shape[1:3]
    out = np.full((len(rows) * (h + pad) + pad, t_max * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, frame in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + h, x : x + w] = frame
    if scale > 1:
        out = cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    return out


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", image[..., ::-1])
        if not ok:
            raise OSError(f"could not encode {path}")
        tmp.write_bytes(buf.tobytes())
    return path


def save_gif(path: str | Path, frames: np.ndarray, fps: float = 4.0, scale: int = 1) -> Path:
    """Write [T, H, W, 3] uint8 frames as a looping GIF, atomically."""
    import imageio.v3 as iio

    path = Path(path)
    if scale > 1:
        frames = np.stack([cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) for f in frames])
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    return path
