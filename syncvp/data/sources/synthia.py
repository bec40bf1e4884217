"""SYNTHIA-SEQS: RGB frames and semantic class maps.

Layout (as distributed)::

    <root>/<sequence>/RGB/<camera>/<frame>.png          8-bit colour
    <root>/<sequence>/GT/LABELS/<camera>/<frame>.png    16-bit, 3 channels: class id (first,
                                                        red channel), instance ids (others)

The class id is the label PNG's first (red) channel. OpenCV decodes PNGs as BGR, so the file
is read with IMREAD_UNCHANGED (keeping 16 bits) and the red channel is index 2. Ids must lie in
0..15; the semantic modality is the gray image id / 15 * 255 (0, 17, 34, ..., 255), resized
nearest-neighbour only (no blending of classes). RGB frames are resized area or bilinear.

Frames are paired by file name across RGB and labels; a frame missing in one of them is an
error naming it. Each sequence keeps every `frame_step`-th frame and is cut into videos of
`video_frames` frames every `stride` kept frames; video ids are `<sequence>-<first raw frame>`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import xarray as xr

from syncvp.data import frame_sources, transforms
from syncvp.data.frame_sources import FrameVideo
from syncvp.data.raw import RawVideo
from syncvp.progress import ProgressFn, no_progress

CLASSES = ("void", "sky", "building", "road", "sidewalk", "fence", "vegetation", "pole", "car", "traffic_sign",
           "pedestrian", "bicycle", "lanemarking", "reserved_13", "reserved_14", "traffic_light")
RED = 2  # index of the red (first) channel in OpenCV's BGR order


class LabelError(ValueError):
    """A label PNG is not a SYNTHIA class map."""


def read_class_ids(path: str | Path) -> np.ndarray:
    """Class ids [H, W] (uint16) from the red channel of a SYNTHIA label PNG."""
    path = Path(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise LabelError(f"{path}: cannot be read as a PNG")
    if image.ndim != 3 or image.shape[2] < 3:
        raise LabelError(f"{path}: expected a 3-channel label PNG (class id in the red channel), got shape {image.shape}")
    ids = image[..., RED].astype(np.uint16)
    bad = ids >= len(CLASSES)
    if bad.any():
        y, x = (int(i[0]) for i in np.nonzero(bad))
        raise LabelError(f"{path}: class id {int(ids[y, x])} at (y={y}, x={x}) is outside 0..{len(CLASSES) - 1}")
    return ids


def read_semantic(path: str | Path) -> np.ndarray:
    """The gray class image [H, W] uint8: id / 15 * 255."""
    return transforms.class_gray(read_class_ids(path), len(CLASSES))


def read_rgb(path: str | Path) -> np.ndarray:
    """One RGB frame [H, W, 3] uint8."""
    return frame_sources.read_image(path, channels=3)


def _frame_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist (check the SYNTHIA root, sequence name and camera)")
    return {p.stem: p for p in folder.iterdir() if p.suffix.lower() == ".png"}


def videos(name: str, source, root: Path) -> list[FrameVideo]:
    """Every video of a SYNTHIA source under `root` (its `root`), split by split."""
    out = []
    for split, sequences in source.splits.as_dict().items():
        for seq in sequences:
            base = Path(root) / seq
            files = {"rgb": _frame_files(base / "RGB" / source.camera),
                     "semantic": _frame_files(base / "GT" / "LABELS" / source.camera)}
            keys = frame_sources.pair_frames(files, f"dataset {name!r}, sequence {seq!r}")[::source.frame_step]
            for pos in frame_sources.clip_positions(len(keys), source.video_frames, source.stride):
                chunk = keys[pos:pos + source.video_frames]
                rgb = tuple(files["rgb"][k] for k in chunk)
                sem = tuple(files["semantic"][k] for k in chunk)
                out.append(FrameVideo(
                    split=split, video_id=f"{seq}-{pos * source.frame_step:06d}",
                    loaders={"rgb": lambda p=rgb: frame_sources.stack_frames(p, read_rgb),
                             "semantic": lambda p=sem: frame_sources.stack_frames(p, read_semantic)},
                    files={"rgb": rgb, "semantic": sem}))
    return out


def dataset_constants(name: str, cfg, paths) -> dict:
    """What every split needs, computed once: nothing for this kind."""
    return {}


def prepare_split(name: str, cfg, paths, split: str, constants: dict,
                  progress: ProgressFn = no_progress) -> xr.Dataset:
    """The clip store of one split (modalities from rgb, semantic and, with pseudo_depth, depth)."""
    attrs = {"rgb": {"encoding": "rgb"},
             "semantic": {"encoding": "class_gray", "num_classes": len(CLASSES), "classes": ",".join(CLASSES),
                          "meaning": "class id from the red channel of GT/LABELS, id / 15 * 255"}}
    return frame_sources.prepare_split(name, cfg, videos(name, cfg.source, cfg.source.root), split,
                                       modes={"rgb": cfg.source.resize, "semantic": "nearest"}, attrs=attrs,
                                       interim_dir=paths.interim_dir(name), progress=progress)


def raw_videos(name: str, cfg, raw_dir: Path) -> list[RawVideo]:
    """The RGB frames of every video under `raw_dir` (the source's root), for pseudo-depth."""
    return frame_sources.raw_listing(videos(name, cfg.source, raw_dir), cfg.source.rgb_modality)
