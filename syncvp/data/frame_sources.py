"""What the image-based source kinds (SYNTHIA, image sequences, video files) share: reading and
pairing frames, and turning their videos into clip stores.

A source kind module (`syncvp.data.sources.<kind>`) lists its stored videos as `FrameVideo`s:
for each modality, a loader that returns the video's native frames (uint8 [T, H, W] or
[T, H, W, 3], the source's temporal selection already applied) and the files it reads.
`prepare_split` then, per video:

1. loads each modality and checks they agree in frames and size;
2. adds the pseudo-depth of a dataset with `pseudo_depth` from
   `<interim>/depth/<video_id>.npz` (uint8 [T, H, W] at the raw size; see `syncvp.data.interim`);
3. centre-crops every modality to the dataset's aspect ratio and resizes it to the dataset
   resolution with the modality's mode (images area/bilinear, label maps nearest; pseudo-depth
   exactly like the RGB frames it was estimated from);

and builds the store. The same `FrameVideo`s give the kind's `RawVideo`s (`raw_listing`: RGB
frames for the pseudo-depth stage), so pseudo-depth and `prepare` always see the same frames
and ids.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import cv2
import numpy as np
import xarray as xr

from syncvp.config.data import PSEUDO_DEPTH_MODALITY
from syncvp.config.loader import to_plain
from syncvp.data import store, transforms
from syncvp.data.interim import depth_file, depth_recipe, read_depth
from syncvp.data.raw import RawVideo
from syncvp.progress import ProgressEvent, ProgressFn, no_progress

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


class FramePairingError(ValueError):
    """The modalities of a sequence do not have the same frames."""


@dataclass(frozen=True)
class FrameVideo:
    """One stored video of an image-based source, before crop and resize."""

    split: str
    video_id: str
    loaders: Mapping[str, Callable[[], np.ndarray]]
    files: Mapping[str, tuple[Path, ...]]


def natural_key(text: str) -> tuple:
    """Sort key in which digit runs compare as numbers ("frame2" < "frame10")."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def to_uint8(image: np.ndarray, value_range: tuple[float, float] | None, path: Path) -> np.ndarray:
    """8-bit images pass through; others need `value_range` = [lo, hi] -> 0..255 (clipped).

    An 8-bit file for a modality whose `value_range` reaches above 255 (a 16-bit range, such as
    Cityscapes disparity) is refused: its values 0..255 would map to a sliver of 0..255.
    """
    if value_range is None:
        if image.dtype != np.uint8:
            raise ValueError(f"{path}: is {image.dtype}, not 8-bit; set the modality's value_range to map it to 0..255")
        return image
    lo, hi = value_range
    if image.dtype == np.uint8 and hi > 255:
        raise ValueError(f"{path}: is 8-bit, but the modality's value_range [{lo:g}, {hi:g}] is for files of more "
                         f"than 8 bits (its values would all map to 0..{max(0, round((255 - lo) * 255 / (hi - lo)))}): use the "
                         f"original 16-bit files, or set value_range to null for 8-bit ones")
    scaled = (image.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.round(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def read_image(path: str | Path, *, channels: int, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Read one frame as uint8 RGB [H, W, 3] (`channels=3`) or gray [H, W] (`channels=1`).

    OpenCV decodes to BGR(A): the channel order is reversed here and alpha dropped. A gray
    modality accepts a 3-channel file only if its channels are equal.
    """
    path = Path(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: cannot be read as an image (missing, truncated or unsupported)")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    if channels == 3:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{path}: expected a colour image, got shape {image.shape}")
        image = np.ascontiguousarray(image[..., ::-1])
    elif image.ndim == 3:
        if not (image == image[..., :1]).all():
            raise ValueError(f"{path}: expected a gray image, but its {image.shape[2]} channels differ")
        image = np.ascontiguousarray(image[..., 0])
    return to_uint8(image, value_range, path)


def read_classes(path: str | Path, classes: int) -> np.ndarray:
    """Read a class-id map (8 or 16 bits, gray or equal channels) as gray levels uint8 [H, W]:
    class k -> round(k * 255 / (classes - 1)) (`class_gray`, `syncvp.metrics.classes`). An id
    >= `classes` is an error naming the file."""
    path = Path(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: cannot be read as an image (missing, truncated or unsupported)")
    if image.ndim == 3:
        image = image[..., :3]
        if not (image == image[..., :1]).all():
            raise ValueError(f"{path}: a class map must be gray, but its {image.shape[2]} channels differ")
        image = image[..., 0]
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: a class map must hold 8- or 16-bit class ids, got {image.dtype}")
    top = int(image.max())
    if top >= classes:
        raise ValueError(f"{path}: class id {top} is not below the modality's classes ({classes})")
    levels = np.round(np.arange(classes) * 255.0 / (classes - 1)).astype(np.uint8)
    return levels[image]


def stack_frames(paths: tuple[Path, ...], read: Callable[[Path], np.ndarray]) -> np.ndarray:
    """Read frames with `read` and stack them; a frame of another size is an error naming it."""
    frames = [read(paths[0])]
    for p in paths[1:]:
        frame = read(p)
        if frame.shape != frames[0].shape:
            raise ValueError(f"{p}: frame of shape {frame.shape}, but {paths[0]} has {frames[0].shape}")
        frames.append(frame)
    return np.stack(frames)


def pair_frames(frames: Mapping[str, Mapping[str, Path]], where: str) -> list[str]:
    """The frame keys every modality has, in natural order; any difference is an error.

    Args:
        frames: modality -> {frame key: file} of one sequence.
        where: the sequence, for messages.
    """
    names = list(frames)
    ref = names[0]
    for other in names[1:]:
        missing = sorted(set(frames[ref]) - set(frames[other]), key=natural_key)
        extra = sorted(set(frames[other]) - set(frames[ref]), key=natural_key)
        if missing:
            raise FramePairingError(f"{where}: modality {other!r} lacks frame {missing[0]!r} "
                                    f"({len(missing)} missing; {ref!r} has {frames[ref][missing[0]]})")
        if extra:
            raise FramePairingError(f"{where}: modality {other!r} has frame {extra[0]!r} that {ref!r} lacks "
                                    f"({frames[other][extra[0]]}; {len(extra)} extra)")
    return sorted(frames[ref], key=natural_key)


def clip_positions(count: int, video_frames: int, stride: int) -> list[int]:
    """Start positions of videos of `video_frames` items every `stride` items among `count`."""
    return list(range(0, count - video_frames + 1, stride))


def crop_resize(frames: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """Centre-crop [T, H, W(, C)] to the aspect ratio of `size` = (height, width), then resize."""
    return transforms.resize_frames(transforms.center_crop(frames, size[1] / size[0]), size, mode)


def read_pseudo_depth(interim_dir: str | Path, video_id: str, frames_shape: tuple[int, int, int]) -> tuple[np.ndarray, dict]:
    """The pseudo-depth of one raw video, checked against its RGB frames' [T, H, W]."""
    path = depth_file(Path(interim_dir), video_id)
    depth, attrs = read_depth(path)
    if depth.shape != tuple(frames_shape):
        raise ValueError(f"{path}: pseudo-depth of shape {depth.shape}, but the video's frames are {tuple(frames_shape)} "
                         "(stale: rerun the `pseudo_depth` stage for this dataset)")
    return depth, attrs


def _native(cfg, video: FrameVideo, interim_dir) -> tuple[dict[str, np.ndarray], dict | None]:
    """Every modality of one video at the native size; the pseudo-depth attributes if used."""
    src = cfg.source
    wanted = [m for m in cfg.modalities if m in src.provides]
    native = {m: video.loaders[m]() for m in wanted}
    shapes = {m: a.shape[:3] for m, a in native.items()}
    if len(set(shapes.values())) > 1:
        found = ", ".join(f"{m} {list(shape)} from {video.files[m][0]}" for m, shape in shapes.items())
        raise ValueError(f"video {video.video_id!r}: modalities disagree in [frames, height, width]: {found}")
    attrs = None
    if any(m not in src.provides for m in cfg.modalities):
        rgb = native.get(src.rgb_modality)
        shape = (rgb if rgb is not None else video.loaders[src.rgb_modality]()).shape[:3]
        native[PSEUDO_DEPTH_MODALITY], attrs = read_pseudo_depth(interim_dir, video.video_id, shape)
    return native, attrs


def prepare_split(name: str, cfg, videos: list[FrameVideo], split: str, *, modes: Mapping[str, str],
                  attrs: Mapping[str, dict], interim_dir: str | Path | None,
                  provenance: Mapping | None = None, progress: ProgressFn = no_progress) -> xr.Dataset:
    """The clip store of one split of an image-based source.

    Args:
        cfg: the DatasetConfig (modalities, resolution, source, optional pseudo_depth).
        videos: every video of the dataset (`FrameVideo.split` selects this split's).
        modes: modality -> resize mode; pseudo-depth uses the RGB modality's mode.
        attrs: modality -> store attributes.
        interim_dir: where the pseudo-depth files are (datasets with `pseudo_depth`).
        provenance: extra JSON-able facts for the store's provenance.
    """
    src, size = cfg.source, tuple(cfg.resolution)
    todo = [v for v in videos if v.split == split]
    if not todo:
        step = getattr(src, "frame_step", 1)
        after = f" after frame_step {step}" if step > 1 else ""
        raise ValueError(f"dataset {name!r}: the {split} split has no video of {src.video_frames} frames (its "
                         f"sequences are shorter{after}): add longer sequences to the split or lower "
                         f"datasets.{name}.source.video_frames")
    unknown = [m for m in cfg.modalities if m not in src.provides and
               not (m == PSEUDO_DEPTH_MODALITY and getattr(cfg, "pseudo_depth", None) is not None)]
    if unknown:
        raise ValueError(f"dataset {name!r}: source kind {src.kind!r} does not provide {unknown}")
    arrays: dict[str, np.ndarray] = {}  # filled in place: one copy of the split in memory
    depth_attrs = None
    for i, video in enumerate(todo):
        native, got = _native(cfg, video, interim_dir)
        got = None if got is None else depth_recipe(got)
        if got is not None and depth_attrs is not None and got != depth_attrs:
            raise ValueError(f"video {video.video_id!r}: pseudo-depth made differently ({got}) from the others "
                             f"({depth_attrs}); rerun the `pseudo_depth` stage")
        depth_attrs = got if got is not None else depth_attrs
        for m in cfg.modalities:
            mode = modes[m] if m in modes else modes[src.rgb_modality]
            frames_out = crop_resize(native[m], size, mode)
            if m not in arrays:
                arrays[m] = np.empty((len(todo),) + frames_out.shape, frames_out.dtype)
            arrays[m][i] = frames_out
        progress(ProgressEvent(task=f"prepare {split}", done=i + 1, total=len(todo), message=video.video_id))
    out_attrs = {m: dict(attrs.get(m, {})) for m in cfg.modalities}
    if depth_attrs is not None:
        out_attrs[PSEUDO_DEPTH_MODALITY] = {"encoding": "pseudo_depth", "pseudo_depth": json.dumps(depth_attrs, sort_keys=True)}
    prov = {"source": to_plain(src), "resolution": list(size), "videos": len(todo), **dict(provenance or {})}
    return store.build_dataset({m: arrays[m] for m in cfg.modalities}, dataset=name, split=split,
                               modality_attrs=out_attrs, video_ids=[v.video_id for v in todo], provenance=prov)


def raw_listing(videos: list[FrameVideo], rgb_modality: str) -> list[RawVideo]:
    """The `RawVideo`s (RGB frames for pseudo-depth) of a list of `FrameVideo`s."""
    ids = [v.video_id for v in videos]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"video id {dup!r} is not unique")
    return [RawVideo(split=v.split, video_id=v.video_id, files=tuple(v.files[rgb_modality]),
                     load=v.loaders[rgb_modality]) for v in videos]
