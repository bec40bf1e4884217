"""Small files in the real layouts of the image-based sources (PNG trees, 16-bit label PNGs,
videos written with OpenCV), with contents that encode which frame they are."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

CAMERA = "Stereo_Left/Omni_F"


def interim_at(folder: Path) -> SimpleNamespace:
    """A stand-in for `PathsConfig` whose pseudo-depth folder is `folder` for every dataset."""
    return SimpleNamespace(interim_dir=lambda name: Path(folder))


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


# --------------------------------------------------------------------------------------------
# Moving scenes: textured frames with motion (so a model can be told from copying a frame) and a
# matching depth, for end-to-end runs through real encoders.


def moving_scene(frames: int, size: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 [T, H, W, 3] of a yellow disc crossing a drifting striped background, and its
    depth in metres [T, H, W] (background 8 -> 4 m from top to bottom, the disc at 2 m). Blue
    stays below 140 everywhere, so a blue-red swap (OpenCV's BGR order) turns the disc cyan,
    which nothing else is."""
    h, w = size
    rng = np.random.default_rng(seed)
    phase, speed = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.5)
    hue = rng.uniform((0.3, 0.3, 0.2), (1.0, 1.0, 0.6))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    rgb, depth = [], []
    for t in range(frames):
        stripes = 0.5 + 0.35 * np.sin(xx * 2 * np.pi / max(w / 3, 2) + phase + speed * t)
        base = np.stack([stripes * c for c in hue], axis=-1) * (0.6 + 0.4 * yy / max(h - 1, 1))[..., None]
        cy, cx = h * (0.3 + 0.4 * (t % 7) / 7), w * ((0.1 + 0.8 * t / max(frames - 1, 1) + phase) % 1.0)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= (min(h, w) / 5) ** 2
        base[disc] = (0.95, 0.9, 0.2)
        rgb.append(np.round(np.clip(base, 0, 1) * 255).astype(np.uint8))
        z = 8.0 - 4.0 * yy / max(h - 1, 1)
        z[disc] = 2.0
        depth.append(z)
    return np.stack(rgb), np.stack(depth)


def write_clip(path: Path, rgb: np.ndarray, fps: float, codec: str) -> None:
    """RGB frames [T, H, W, 3] -> a video file encoded by OpenCV's VideoWriter (`codec` fourcc)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = rgb.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot encode {codec} into {path}"
    for frame in rgb:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()


def write_frames(folder: Path, rgb: np.ndarray, names: list[str], ext: str) -> None:
    """One image file per frame, `<folder>/<name><ext>` (PNG lossless, JPEG lossy)."""
    for frame, name in zip(rgb, names, strict=True):
        write_rgb(folder / f"{name}{ext}", frame)


def disparity_png(depth: np.ndarray) -> np.ndarray:
    """Cityscapes-style 16-bit disparity of a depth map: p = 256 d + 1 with d = 240 / z px (up to ~30700)."""
    return np.round(256.0 * 240.0 / depth + 1.0).astype(np.uint16)


def write_cityscapes(root: Path, split: str, city: str, snippet: int, frames: int, size=(32, 64), seed=0) -> None:
    """`leftImg8bit_sequence` and `disparity_sequence` frames of one snippet, renamed to `rgb/`
    and `depth/`: `<root>/{rgb,depth}/<split>/<city>/<city>_<snippet>_<frame>_{leftImg8bit,disparity}.png`."""
    rgb, depth = moving_scene(frames, size, seed)
    for i in range(frames):
        stem = f"{city}_{snippet:06d}_{i:06d}"
        write_rgb(root / "rgb" / split / city / f"{stem}_leftImg8bit.png", rgb[i])
        path = root / "depth" / split / city / f"{stem}_disparity.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), disparity_png(depth[i]))
