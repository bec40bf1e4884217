"""Real data sources for `datasets.<name>.source` (ERA5-Land, `era5`, is in
`syncvp.config.era5_source`, with the ERA5 processing settings the synthetic ERA5 source shares).

- `synthia`: SYNTHIA-SEQS folders (RGB frames + 16-bit GT/LABELS PNGs) under a local root.
- `image_sequence`: one local root with one sub-folder per modality (Cityscapes sequences +
  disparity, BAIR, agricultural image series), split by split files or leave-one-out.
- `video`: local video files (OpenDV-YouTube), decoded at a target frame rate.

Every source has `provides` (the modality names it supplies), `video_frames` (frames per stored
video), `input_dir(name, paths)` (the folder `prepare` reads, a DVC dependency) and `producer`
(the stage writing that folder, None for the user's folder; the `pipeline` fan-out reads it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from syncvp.config.loader import require


def check_clips(video_frames: int, stride: int, frame_step: int = 1) -> None:
    """How a long sequence is cut into stored videos."""
    require(video_frames >= 2, "video_frames", f"must be >= 2, got {video_frames}")
    require(stride >= 1, "stride", f"must be >= 1, got {stride}")
    require(frame_step >= 1, "frame_step", f"must be >= 1, got {frame_step}")


# --------------------------------------------------------------------------------------------
# Frame folders and videos


@dataclass(frozen=True, kw_only=True)
class NameSplits:
    """Sequence (folder) names of each split; disjoint."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for split, names in self.as_dict().items():
            require(len(names) >= 1, split, "must list at least one sequence")
            for name in names:
                require(name not in seen, split, f"{name!r} is also in {seen.get(name)!r} (splits must be disjoint)")
                seen[name] = split

    def as_dict(self) -> dict[str, tuple[str, ...]]:
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(frozen=True, kw_only=True)
class SynthiaSource:
    """SYNTHIA-SEQS sequences: RGB frames and semantic class maps (16 classes).

    Layout: `<root>/<sequence>/RGB/<camera>/<frame>.png` and
    `<root>/<sequence>/GT/LABELS/<camera>/<frame>.png` (16-bit, class id in the red channel).

    Attributes:
        root: the folder holding the SYNTHIA-SEQS-* sequence folders.
        camera: camera sub-path, e.g. "Stereo_Left/Omni_F".
        splits: sequence folder names of each split.
        frame_step: keep every frame_step-th frame.
        video_frames: kept frames per stored video.
        stride: kept frames between the starts of consecutive videos of a sequence.
        resize: RGB resize ("area" or "bilinear"); class maps are always resized nearest-neighbour.
    """

    kind: Literal["synthia"]
    root: Path
    camera: str
    splits: NameSplits
    frame_step: int
    video_frames: int
    stride: int
    resize: Literal["area", "bilinear"]

    provides = ("rgb", "semantic")
    rgb_modality = "rgb"
    producer = None

    def __post_init__(self) -> None:
        check_clips(self.video_frames, self.stride, self.frame_step)

    def input_dir(self, name: str, paths) -> Path:
        return self.root


@dataclass(frozen=True, kw_only=True)
class ImageModality:
    """How one modality folder of an image-sequence dataset is read.

    Attributes:
        channels: 3 (colour, stored RGB) or 1 (gray; a 3-channel file must have equal channels).
        resize: "area"/"bilinear" for images, "nearest" for label maps.
        value_range: [lo, hi] mapped linearly to 0..255 (for 16-bit files such as Cityscapes
            disparity), or null: files must then be 8-bit.
        classes: a class map of this many classes (the files hold class ids 0..classes-1, 8 or
            16 bits; stored spread over 0..255 as `class_gray`, decoded and scored as classes:
            `syncvp.metrics.classes`), or null for an image. Needs channels 1, resize nearest and
            no value_range.
    """

    channels: int
    resize: Literal["area", "bilinear", "nearest"]
    value_range: tuple[float, float] | None
    classes: int | None

    def __post_init__(self) -> None:
        require(self.channels in (1, 3), "channels", f"must be 1 or 3, got {self.channels}")
        if self.classes is not None:
            require(2 <= self.classes <= 256, "classes", f"must lie in [2, 256], got {self.classes}")
            require(
                self.channels == 1 and self.resize == "nearest" and self.value_range is None,
                "classes",
                "a class map needs channels 1, resize nearest and value_range null (ids are not rescaled), got "
                f"channels {self.channels}, resize {self.resize}, value_range {self.value_range}",
            )
        if self.value_range is not None:
            lo, hi = self.value_range
            require(lo < hi, "value_range", f"must be [lo, hi] with lo < hi, got {list(self.value_range)}")


@dataclass(frozen=True, kw_only=True)
class ImageSequenceSource:
    """Frame folders, one sub-folder per modality, paired by frame name (Cityscapes sequences +
    disparity, BAIR, agricultural series).

    Layout: `<root>/<modality>/<sequence path>/<frame>.<png|jpg|...>`, and with `splits: files`
    split files `<root>/splits/{train,val,test}.txt` listing sequence paths (or folders holding
    them).

    Attributes:
        root: the dataset folder.
        modalities: modality (= folder) name -> how to read it.
        rgb_modality: the colour modality whose frames pseudo-depth is estimated from.
        frame_pattern: regex matched against file stems; group `frame` orders and pairs the
            frames; an optional group `sequence` splits a folder into several sequences.
        frame_step: keep every frame_step-th frame.
        video_frames: kept frames per stored video.
        stride: kept frames between the starts of consecutive videos of a sequence.
        splits: how sequences are assigned to splits: "files" (the split files under the root)
            or "leave_one_out" (`held_out` -> test, `val` -> val, every other sequence found ->
            train; no split files are read).
        held_out: leave_one_out: the sequence ids of the test split (null or [] with files).
        val: leave_one_out: the sequence ids of the val split (null or [] with files).
    """

    kind: Literal["image_sequence"]
    root: Path
    modalities: dict[str, ImageModality]
    rgb_modality: str
    frame_pattern: str
    frame_step: int
    video_frames: int
    stride: int
    splits: Literal["files", "leave_one_out"]
    held_out: tuple[str, ...] | None
    val: tuple[str, ...] | None

    producer = None
    # keys that only assign sequences to splits: they change no frame nor label (pseudo-depth keys)
    assignment_keys = ("splits", "held_out", "val")

    def __post_init__(self) -> None:
        self._check_assignment()
        require(len(self.modalities) >= 1, "modalities", "must name at least one modality folder")
        for name in self.modalities:
            require(
                bool(re.match(r"^[a-z][a-z0-9_]*$", name)),
                f"modalities.{name}",
                "modality folder names must match [a-z][a-z0-9_]*",
            )
        require(
            self.rgb_modality in self.modalities,
            "rgb_modality",
            f"{self.rgb_modality!r} is not one of the modalities {list(self.modalities)}",
        )
        rgb = self.modalities[self.rgb_modality]
        require(
            rgb.channels == 3 and rgb.resize in ("area", "bilinear"),
            "rgb_modality",
            f"{self.rgb_modality!r} must have 3 channels and resize area or bilinear",
        )
        try:
            pattern = re.compile(self.frame_pattern)
        except re.error as exc:
            require(False, "frame_pattern", f"is not a valid regex: {exc}")
        require("frame" in pattern.groupindex, "frame_pattern", "needs a named group (?P<frame>...)")
        require(
            set(pattern.groupindex) <= {"frame", "sequence"},
            "frame_pattern",
            f"may only name the groups 'frame' and 'sequence', got {sorted(pattern.groupindex)}",
        )
        check_clips(self.video_frames, self.stride, self.frame_step)

    def _check_assignment(self) -> None:
        if self.splits == "files":
            for key in ("held_out", "val"):
                ids = list(getattr(self, key) or ())
                require(not ids, key, f"must be null or [] with splits: files (the split files assign them), got {ids}")
            return
        for key in ("held_out", "val"):
            ids = getattr(self, key) or ()
            require(len(ids) >= 1, key, "must list at least one sequence id with splits: leave_one_out")
            for i, seq in enumerate(ids):
                clean = seq.strip().strip("/")
                require(
                    bool(clean) and clean == seq,
                    f"{key}[{i}]",
                    f"must be a sequence id without surrounding spaces or slashes, got {seq!r}",
                )
                require(seq not in ids[:i], f"{key}[{i}]", f"{seq!r} is listed twice")
        for i, seq in enumerate(self.val):
            require(
                seq not in self.held_out,
                f"val[{i}]",
                f"{seq!r} is also in held_out (held_out and val must be disjoint)",
            )

    @property
    def provides(self) -> tuple[str, ...]:
        return tuple(self.modalities)

    def input_dir(self, name: str, paths) -> Path:
        return self.root


@dataclass(frozen=True, kw_only=True)
class VideoSegment:
    """A time range of one video file (seconds from its start; end null = to the end)."""

    file: str
    start_s: float
    end_s: float | None

    def __post_init__(self) -> None:
        require(
            bool(self.file) and not Path(self.file).is_absolute(),
            "file",
            f"must be a path relative to `root`, got {self.file!r}",
        )
        require(self.start_s >= 0, "start_s", f"must be >= 0, got {self.start_s}")
        require(
            self.end_s is None or self.end_s > self.start_s,
            "end_s",
            f"must be null or > start_s ({self.start_s}), got {self.end_s}",
        )

    def overlaps(self, other: VideoSegment) -> bool:
        inf = float("inf")
        return self.file == other.file and self.start_s < (other.end_s or inf) and other.start_s < (self.end_s or inf)


@dataclass(frozen=True, kw_only=True)
class VideoSplits:
    """Video segments of each split; segments of one file must not overlap across splits."""

    train: tuple[VideoSegment, ...]
    val: tuple[VideoSegment, ...]
    test: tuple[VideoSegment, ...]

    def __post_init__(self) -> None:
        items = [(split, i, seg) for split, segs in self.as_dict().items() for i, seg in enumerate(segs)]
        for split, segs in self.as_dict().items():
            require(len(segs) >= 1, split, "must list at least one segment")
        for a, (sa, ia, seg_a) in enumerate(items):
            for sb, ib, seg_b in items[a + 1 :]:
                require(
                    not seg_a.overlaps(seg_b),
                    f"{sb}[{ib}]",
                    f"overlaps {sa}[{ia}] ({seg_a.file} {seg_a.start_s}-{seg_a.end_s} s)",
                )

    def as_dict(self) -> dict[str, tuple[VideoSegment, ...]]:
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(frozen=True, kw_only=True)
class VideoSource:
    """Local video files (OpenDV-YouTube), decoded with OpenCV at a target frame rate.

    Attributes:
        root: the folder holding the video files.
        fps: frames per second after resampling (frame k is the source frame at k / fps seconds).
        trim_s: [start, end] seconds dropped at the beginning and end of every file (text overlays).
        video_frames: frames per stored video.
        stride: frames between the starts of consecutive videos of a segment.
        resize: "area" or "bilinear" (after the centre crop to the dataset's aspect ratio).
        splits: the file segments of each split.
    """

    kind: Literal["video"]
    root: Path
    fps: float
    trim_s: tuple[float, float]
    video_frames: int
    stride: int
    resize: Literal["area", "bilinear"]
    splits: VideoSplits

    provides = ("rgb",)
    rgb_modality = "rgb"
    producer = None

    def __post_init__(self) -> None:
        require(self.fps > 0, "fps", f"must be > 0, got {self.fps}")
        require(min(self.trim_s) >= 0, "trim_s", f"must be [start, end] seconds >= 0, got {list(self.trim_s)}")
        check_clips(self.video_frames, self.stride)

    def input_dir(self, name: str, paths) -> Path:
        return self.root
