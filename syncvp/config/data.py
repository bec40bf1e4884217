"""The `datasets` section: what each dataset is made from and what the models learn on it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from syncvp.config.depth import PseudoDepthConfig
from syncvp.config.era5_source import Era5Processing, Era5Source, check_months
from syncvp.config.loader import require
from syncvp.config.sources import ImageSequenceSource, SynthiaSource, VideoSource

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
PSEUDO_DEPTH_MODALITY = "depth"  # the modality a dataset's `pseudo_depth` supplies


def check_name(key: str, name: str) -> None:
    """Dataset and modality names are lowercase identifiers, so `<dataset>-<modality>` parses."""
    require(bool(NAME_PATTERN.match(name)), key, f"{name!r} must match [a-z][a-z0-9_]* (no '-')")


@dataclass(frozen=True, kw_only=True)
class SplitCounts:
    """Number of videos in each split."""

    train: int
    val: int
    test: int

    def __post_init__(self) -> None:
        require(self.train >= 1, "train", f"must be >= 1, got {self.train}")
        require(self.val >= 1, "val", f"must be >= 1, got {self.val}")
        require(self.test >= 1, "test", f"must be >= 1, got {self.test}")

    def as_dict(self) -> dict[str, int]:
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(frozen=True, kw_only=True)
class SyntheticVideoSource:
    """Procedural 3-D scenes (spheres and boxes on a checkered ground) rendered by ray casting.

    Attributes:
        seed: generator seed; the same seed gives byte-identical files.
        resolution: rendered frame size in pixels (square).
        frames: frames per video.
        videos: videos per split.
        objects: (min, max) objects per scene.
        speed: scale of object speeds, in world units per frame.
        camera_pan: largest camera yaw rate, degrees per frame.
        supersample: RGB anti-aliasing factor per axis (depth and class maps are exact, unfiltered).
        depth_range: (near, far) in metres; depth is stored as uint8 inverse depth over this range.
    """

    kind: Literal["synthetic_video"]
    seed: int
    resolution: int
    frames: int
    videos: SplitCounts
    objects: tuple[int, int]
    speed: float
    camera_pan: float
    supersample: int
    depth_range: tuple[float, float]

    provides = ("rgb", "depth", "semantic")
    producer = "synthesize"

    def __post_init__(self) -> None:
        require(self.resolution >= 8, "resolution", f"must be >= 8, got {self.resolution}")
        require(self.frames >= 2, "frames", f"must be >= 2, got {self.frames}")
        lo, hi = self.objects
        require(1 <= lo <= hi, "objects", f"must be (min, max) with 1 <= min <= max, got {self.objects}")
        require(self.speed >= 0, "speed", f"must be >= 0, got {self.speed}")
        require(self.camera_pan >= 0, "camera_pan", f"must be >= 0, got {self.camera_pan}")
        require(self.supersample >= 1, "supersample", f"must be >= 1, got {self.supersample}")
        near, far = self.depth_range
        require(0 < near < far, "depth_range", f"must be (near, far) with 0 < near < far, got {self.depth_range}")

    @property
    def video_frames(self) -> int:
        return self.frames

    def input_dir(self, name: str, paths) -> Path:
        """Where `synthesize` writes this dataset (what `prepare` reads)."""
        return paths.raw_dir(name)


@dataclass(frozen=True, kw_only=True)
class SyntheticEra5Source:
    """Smooth ERA5-Land-like t2m (K) and sp (Pa) fields with a fixed sea mask, written month by
    month exactly as a CDS download (see `syncvp.data.synthetic_era5`).

    Attributes:
        seed: generator seed.
        months: months to write, "YYYY-MM", hourly steps.
        grid: (latitude, longitude) grid points.
        step: grid spacing in degrees (ERA5-Land: 0.1).
        north, west: the north-west corner of the area, degrees.
        layout: "new" (float32, `valid_time`) or "legacy" (int16 packing, `time`) CDS files.
        processing: how the months become clips (shared with the `era5` source).
    """

    kind: Literal["synthetic_era5"]
    seed: int
    months: tuple[str, ...]
    grid: tuple[int, int]
    step: float
    north: float
    west: float
    layout: Literal["new", "legacy"]
    processing: Era5Processing

    provides = ("t2m", "sp")
    producer = "synthesize"

    def __post_init__(self) -> None:
        require(len(self.months) >= 1, "months", "must list at least one month")
        check_months("months", self.months)
        require(min(self.grid) >= 4, "grid", f"needs at least 4 points per axis, got {self.grid}")
        require(self.step > 0, "step", f"must be > 0, got {self.step}")
        require(
            -90 <= self.north - self.step * (self.grid[0] - 1) and self.north <= 90,
            "north",
            "the area must lie within latitudes -90..90",
        )
        self.processing.check_grid(self.months, self.grid)

    @property
    def video_frames(self) -> int:
        return self.processing.video_frames

    def input_dir(self, name: str, paths) -> Path:
        """Where `synthesize` writes the monthly files (what `prepare` reads)."""
        return paths.raw_dir(name)


Source = Union[SyntheticVideoSource, SyntheticEra5Source, Era5Source, SynthiaSource, ImageSequenceSource, VideoSource]


@dataclass(frozen=True, kw_only=True)
class DatasetModels:
    """A dataset's own model sizes, where they differ from the global `autoencoder` and `unet`
    sections (e.g. a 256-pixel dataset with patch size 8 next to a 128-pixel one with 4).

    Attributes:
        autoencoder: {key: value} of the `autoencoder` section to change for this dataset, or null.
        unet: {key: value} of the `unet` section to change for this dataset, or null.

    The keys are checked, and the merged sections validated like the global ones, when params load
    (`Params.autoencoder_for`, `Params.unet_for`).
    """

    autoencoder: dict[str, Any] | None
    unet: dict[str, Any] | None


@dataclass(frozen=True, kw_only=True)
class DatasetConfig:
    """One dataset: its source and the prediction task the models learn on it.

    Attributes:
        source: where the frames come from (a `kind`-tagged mapping).
        modalities: the modalities the models learn, in order (K >= 2; the paper uses 2).
        resolution: (height, width) of the processed clips.
        context_frames: observed frames given to the model.
        future_frames: frames generated per chunk (the length of the future autoencoder).
        rollout_frames: frames predicted per test video at evaluation (chunks are chained).
        pseudo_depth: estimate the `depth` modality with Depth-Anything-V2 (null: the source has it).
        models: this dataset's changes to the global `autoencoder` / `unet` sections (null: none).
    """

    source: Source
    modalities: tuple[str, ...]
    resolution: tuple[int, int]
    context_frames: int
    future_frames: int
    rollout_frames: int
    pseudo_depth: PseudoDepthConfig | None
    models: DatasetModels | None

    def __post_init__(self) -> None:
        require(len(self.modalities) >= 2, "modalities", f"needs at least 2 modalities, got {list(self.modalities)}")
        require(len(set(self.modalities)) == len(self.modalities), "modalities", "has duplicates")
        for i, name in enumerate(self.modalities):
            check_name(f"modalities[{i}]", name)
            provides = getattr(self.source, "provides", None)
            if provides is not None and self.pseudo_depth is not None:
                provides = (*provides, PSEUDO_DEPTH_MODALITY)  # estimated from the RGB frames
            require(
                provides is None or name in provides,
                f"modalities[{i}]",
                f"{name!r} is not provided by source kind {self.source.kind!r} (it provides {list(provides or ())})",
            )
        require(
            self.pseudo_depth is None or PSEUDO_DEPTH_MODALITY in self.modalities,
            "pseudo_depth",
            f"estimates the {PSEUDO_DEPTH_MODALITY!r} modality, which is not among modalities {list(self.modalities)}",
        )
        require(min(self.resolution) >= 8, "resolution", f"must be >= 8 pixels per side, got {self.resolution}")
        for key in ("context_frames", "future_frames", "rollout_frames"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        available = getattr(self.source, "video_frames", None)
        if available is not None:
            need = self.context_frames + max(self.future_frames, self.rollout_frames)
            require(
                need <= available,
                "rollout_frames",
                f"context_frames + max(future_frames, rollout_frames) = {need} exceeds the {available} frames per video",
            )

    @property
    def clip_frames(self) -> int:
        """Frames of one training clip: context followed by one future chunk."""
        return self.context_frames + self.future_frames
