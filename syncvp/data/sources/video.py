"""Local video files (OpenDV-YouTube) decoded with OpenCV.

Each split lists segments `{file, start_s, end_s}` of files under the source's root. A file's
first and last `trim_s` seconds are dropped (text overlays); within what is left of a segment,
output frame k is the source frame shown at time k / fps (source index floor(k * src_fps / fps)),
and videos of `video_frames` output frames start every `stride` output frames. Video ids are
`<file stem>-<k of the first frame>` (unique across splits, whose segments do not overlap, and
stable while fps is unchanged). Frames are decoded BGR and returned RGB at the native size;
`prepare` centre-crops them to the dataset's aspect ratio and resizes them (256 x 256 for the
paper's OpenDV setting).

OpenCV does not raise on a bad file: a file that does not open, reports no frames or stops
decoding before a needed frame raises `VideoDecodeError` naming the file and the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import xarray as xr

from syncvp.data import frame_sources
from syncvp.data.frame_sources import FrameVideo
from syncvp.data.raw import RawVideo
from syncvp.progress import ProgressFn, no_progress

_EPS = 1e-9


class VideoDecodeError(ValueError):
    """A video file cannot be decoded (missing, truncated, corrupt or unsupported)."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video file."""

    path: Path
    fps: float
    frames: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def probe(path: str | Path) -> VideoInfo:
    """Open a video and read its frame rate, frame count and size."""
    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(f"{path} does not exist")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoDecodeError(f"{path}: cannot be opened by OpenCV (truncated, corrupt or unsupported codec)")
        fps, count = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()
    if not (fps > 0 and count > 0):
        raise VideoDecodeError(f"{path}: reports {count} frames at {fps} fps; cannot plan frames")
    return VideoInfo(path=path, fps=float(fps), frames=count, width=width, height=height)


def output_range(info: VideoInfo, fps: float, trim_s: tuple[float, float], start_s: float,
                 end_s: float | None) -> range:
    """Output frame numbers k (times k / fps) inside the segment after trimming."""
    lo = max(trim_s[0], start_s)
    hi = info.duration_s - trim_s[1]
    if end_s is not None:
        hi = min(hi, end_s)
    first, stop = math.ceil(lo * fps - _EPS), math.ceil(hi * fps - _EPS)
    while stop > first and source_index(stop - 1, fps, info.fps) >= info.frames:
        stop -= 1
    return range(first, max(first, stop))


def source_index(k: int, fps: float, src_fps: float) -> int:
    """The source frame shown at output time k / fps."""
    return int(math.floor(k * src_fps / fps + _EPS))


def read_frames(path: str | Path, indices: list[int], total: int | None = None) -> np.ndarray:
    """Decode the given (increasing) source frame indices: RGB uint8 [T, H, W, 3].

    Seeks to the first index, then decodes forward; a frame that cannot be decoded raises
    `VideoDecodeError` (a truncated file ends early).
    """
    path = Path(path)
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoDecodeError(f"{path}: cannot be opened by OpenCV (truncated, corrupt or unsupported codec)")
        if indices[0] > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, indices[0])
        out, position, wanted = [], indices[0], iter(indices)
        target = next(wanted)
        while target is not None:
            ok, frame = cap.read()
            if not ok:
                of = f" of the {total} it reports" if total else ""
                raise VideoDecodeError(f"{path}: decoding stopped at frame {position}{of} "
                                       "(truncated or corrupt file?)")
            if position == target:
                out.append(np.ascontiguousarray(frame[..., ::-1]))
                target = next(wanted, None)
            position += 1
    finally:
        cap.release()
    return np.stack(out)


def videos(name: str, source, root: Path) -> list[FrameVideo]:
    """Every video of a video source under `root`, split by split."""
    root, out, stems = Path(root), [], {}
    infos: dict[str, VideoInfo] = {}
    for split, segments in source.splits.as_dict().items():
        for n, seg in enumerate(segments):
            path = root / seg.file
            stem = Path(seg.file).stem
            if stems.setdefault(stem, seg.file) != seg.file:
                raise ValueError(f"dataset {name!r}: files {stems[stem]!r} and {seg.file!r} share the stem {stem!r} "
                                 "(video ids would collide)")
            info = infos.get(seg.file) or infos.setdefault(seg.file, probe(path))
            if source.fps > info.fps + _EPS:
                raise ValueError(f"dataset {name!r}: fps {source.fps} exceeds the {info.fps} fps of {path} "
                                 "(frames would repeat)")
            ks = output_range(info, source.fps, tuple(source.trim_s), seg.start_s, seg.end_s)
            if len(ks) < source.video_frames:
                raise ValueError(f"datasets.{name}.source.splits.{split}[{n}]: {seg.start_s:g}-{seg.end_s or 'end'} "
                                 f"s of {path} ({info.duration_s:.3g} s, trim_s {list(source.trim_s)}) holds "
                                 f"{len(ks)} frames at {source.fps:g} fps, fewer than one video of video_frames "
                                 f"{source.video_frames}")
            for pos in frame_sources.clip_positions(len(ks), source.video_frames, source.stride):
                clip = [ks[pos + i] for i in range(source.video_frames)]
                idx = [source_index(k, source.fps, info.fps) for k in clip]
                out.append(FrameVideo(split=split, video_id=f"{stem}-{clip[0]:07d}",
                                      loaders={"rgb": lambda p=path, i=idx, n=info.frames: read_frames(p, i, n)},
                                      files={"rgb": (path,)}))
    return out


def dataset_constants(name: str, cfg, paths) -> dict:
    """What every split needs, computed once: nothing for this kind."""
    return {}


def prepare_split(name: str, cfg, paths, split: str, constants: dict,
                  progress: ProgressFn = no_progress) -> xr.Dataset:
    """The clip store of one split."""
    src = cfg.source
    return frame_sources.prepare_split(name, cfg, videos(name, src, src.root), split, modes={"rgb": src.resize},
                                       attrs={"rgb": {"encoding": "rgb", "fps": float(src.fps)}},
                                       interim_dir=paths.interim_dir(name), progress=progress)


def raw_videos(name: str, cfg, raw_dir: Path) -> list[RawVideo]:
    """The RGB frames of every video under `raw_dir` (the source's root), for pseudo-depth."""
    return frame_sources.raw_listing(videos(name, cfg.source, raw_dir), cfg.source.rgb_modality)
