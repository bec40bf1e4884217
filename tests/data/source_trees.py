"""Small files in the real layouts of the image-based sources (PNG trees, 16-bit label PNGs,
videos written with OpenCV), with contents that encode which frame they are."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CAMERA = "Stereo_Left/Omni_F"


def rgb_frame(index: int, size: tuple[int, int], salt: int = 0) -> np.ndarray:
    """An RGB frame whose red level encodes `index`, green a gradient, blue `salt`."""
    h, w = size
    frame = np.zeros((h, w, 3), np.uint8)
    frame[..., 0] = 10 * index + 5
    frame[..., 1] = (np.arange(w) * 255 // max(w - 1, 1))[None, :]
    frame[..., 2] = salt
    return frame


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))  # OpenCV writes BGR


def class_ids(index: int, size: tuple[int, int], block: int = 3) -> np.ndarray:
    """Class ids 0..15 in blocks of `block` pixels, shifted by the frame index."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy // block) * 5 + (xx // block) + index) % 16


def write_label(path: Path, ids: np.ndarray, instance: int = 40000) -> None:
    """A SYNTHIA label: 16-bit, class id in the red channel, instance ids in green and blue."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = np.stack([np.full(ids.shape, instance, np.uint16), (ids * 1000 + 7).astype(np.uint16),
                    ids.astype(np.uint16)], axis=-1)
    assert cv2.imwrite(str(path), bgr)


def write_synthia(root: Path, sequence: str, frames: int, size=(24, 32)) -> None:
    for i in range(frames):
        write_rgb(root / sequence / "RGB" / CAMERA / f"{i:06d}.png", rgb_frame(i, size))
        write_label(root / sequence / "GT" / "LABELS" / CAMERA / f"{i:06d}.png", class_ids(i, size))


BITS = 6


def write_video(path: Path, frames: int, fps: float, size=(64, 96), codec: str = "mp4v") -> None:
    """A video whose frame index is written in binary as black/white 8x8 blocks near the top of
    the centre (robust to lossy coding; see `frame_number`), on mid-gray, with pure red left and
    right 12-pixel borders (a centre crop to a square removes them)."""
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.full((h, w, 3), 128, np.uint8)
        for bit in range(BITS):
            x = w // 2 - 4 * BITS + 8 * bit
            frame[8:16, x:x + 8] = 255 if (i >> bit) & 1 else 0
        frame[:, :12] = (0, 0, 255)
        frame[:, -12:] = (0, 0, 255)
        writer.write(frame)
    writer.release()


def frame_number(frame: np.ndarray) -> int:
    """The index `write_video` wrote into a decoded full-size frame."""
    w = frame.shape[1]
    bits = [frame[10:14, w // 2 - 4 * BITS + 8 * b + 2: w // 2 - 4 * BITS + 8 * b + 6].mean() > 128 for b in range(BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)
