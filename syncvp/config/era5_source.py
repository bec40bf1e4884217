"""The ERA5-Land source of `datasets.<name>.source` (`kind: era5`) and the ERA5 processing
settings shared with the synthetic ERA5 source.

`era5`: ERA5-Land `2m_temperature` + `surface_pressure`, downloaded month by month with cdsapi
(stage `download_era5`) into `<paths.raw>/<dataset>/`. Like every source it has `provides`,
`video_frames`, `input_dir(name, paths)` and `producer` (see `syncvp.config.sources`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from syncvp.config.loader import require
from syncvp.config.sources import check_clips

ERA5_FIELDS = ("t2m", "sp")
MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def check_months(key: str, months: tuple[str, ...]) -> None:
    """Months are "YYYY-MM" strings without duplicates."""
    for i, month in enumerate(months):
        require(bool(MONTH_PATTERN.match(month)), f"{key}[{i}]", f"must look like 2020-01, got {month!r}")
    require(len(set(months)) == len(months), key, f"has duplicates: {list(months)}")


# --------------------------------------------------------------------------------------------
# ERA5


@dataclass(frozen=True, kw_only=True)
class MonthSplits:
    """Months of each split ("YYYY-MM"); disjoint, so no clip leaks between splits."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for split, months in self.as_dict().items():
            require(len(months) >= 1, split, "must list at least one month")
            check_months(split, months)
            for month in months:
                require(
                    month not in seen, split, f"month {month} is also in {seen.get(month)!r} (splits must be disjoint)"
                )
                seen[month] = split

    def as_dict(self) -> dict[str, tuple[str, ...]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    @property
    def months(self) -> tuple[str, ...]:
        """Every month used by a split, sorted."""
        return tuple(sorted(m for ms in self.as_dict().values() for m in ms))


@dataclass(frozen=True, kw_only=True)
class Era5Processing:
    """How monthly ERA5-Land files become clips (`prepare`); shared by `era5` and `synthetic_era5`.

    Attributes:
        normalization: where the min-max constants come from: "metadata" (the range fixed by the
            int16 `scale_factor`/`add_offset` packing of old CDS files, or CF `actual_range` /
            `valid_min`/`valid_max`), "train" (min/max over the training months) or "fixed".
        fixed_range: {t2m: [min, max], sp: [min, max]} in K / Pa when normalization is "fixed",
            else null.
        crop: [row, col, height, width] in grid cells from the north-west corner, or null for
            the whole grid; the crop is then resized to the dataset resolution.
        resize: "nearest", or "area"/"bilinear" (mask-aware: only valid points are averaged).
        video_frames: consecutive time steps per stored video.
        stride: time steps between the starts of consecutive videos of a month (videos never
            cross a month boundary).
        splits: months of each split.
    """

    normalization: Literal["metadata", "train", "fixed"]
    fixed_range: dict[str, tuple[float, float]] | None
    crop: tuple[int, int, int, int] | None
    resize: Literal["area", "bilinear", "nearest"]
    video_frames: int
    stride: int
    splits: MonthSplits

    def __post_init__(self) -> None:
        check_clips(self.video_frames, self.stride)
        if self.normalization == "fixed":
            got = sorted(self.fixed_range or {})
            require(
                got == sorted(ERA5_FIELDS), "fixed_range", f"must give [min, max] for {list(ERA5_FIELDS)}, got {got}"
            )
            for name, (lo, hi) in (self.fixed_range or {}).items():
                require(lo < hi, f"fixed_range.{name}", f"must be [min, max] with min < max, got {[lo, hi]}")
        else:
            require(
                self.fixed_range is None,
                "fixed_range",
                f"is only used when normalization is 'fixed' (it is {self.normalization!r}); set it to null",
            )
        if self.crop is not None:
            row, col, height, width = self.crop
            require(
                row >= 0 and col >= 0 and height >= 4 and width >= 4,
                "crop",
                f"must be [row >= 0, col >= 0, height >= 4, width >= 4], got {list(self.crop)}",
            )

    def check_grid(self, months: tuple[str, ...], grid: tuple[int, int]) -> None:
        """Splits use only available months; the crop fits the (lat, lon) grid."""
        for split, ms in self.splits.as_dict().items():
            for month in ms:
                require(
                    month in months, f"processing.splits.{split}", f"month {month} is not in `months` ({list(months)})"
                )
        if self.crop is not None:
            row, col, height, width = self.crop
            require(
                row + height <= grid[0] and col + width <= grid[1],
                "processing.crop",
                f"{list(self.crop)} does not fit the {grid[0]}x{grid[1]} grid",
            )


@dataclass(frozen=True, kw_only=True)
class Era5Source:
    """ERA5-Land hourly 2 m temperature (K) and surface pressure (Pa) from the Copernicus Climate
    Data Store, one cdsapi request per month (credentials: ~/.cdsapirc or CDSAPI_URL/CDSAPI_KEY).

    Attributes:
        months: months to download, "YYYY-MM" (one request and one file each).
        hours: hours of the day to download, 0..23 (consecutive stored frames are consecutive
            downloaded hours).
        area: [north, west, south, east] in degrees.
        step: grid spacing in degrees (the request's `grid`; ERA5-Land native: 0.1).
        retries: Prefect retries of a failed month (transient server or network errors).
        retry_delay_s: first retry delay; it doubles with each retry (exponential backoff).
        workers: months requested at the same time (CDS queues requests; 1-4 is sensible).
        processing: how the months become clips.
    """

    kind: Literal["era5"]
    months: tuple[str, ...]
    hours: tuple[int, ...]
    area: tuple[float, float, float, float]
    step: float
    retries: int
    retry_delay_s: float
    workers: int
    processing: Era5Processing

    provides = ERA5_FIELDS
    producer = "download_era5"

    def __post_init__(self) -> None:
        require(len(self.months) >= 1, "months", "must list at least one month")
        check_months("months", self.months)
        require(len(self.hours) >= 1, "hours", "must list at least one hour")
        require(
            all(0 <= h <= 23 for h in self.hours) and len(set(self.hours)) == len(self.hours),
            "hours",
            f"must be distinct hours 0..23, got {list(self.hours)}",
        )
        require(list(self.hours) == sorted(self.hours), "hours", f"must be in increasing order, got {list(self.hours)}")
        north, west, south, east = self.area
        require(
            -90 <= south < north <= 90 and -180 <= west < east <= 360,
            "area",
            f"must be [north, west, south, east] with south < north and west < east, got {list(self.area)}",
        )
        require(self.step > 0, "step", f"must be > 0, got {self.step}")
        require(
            min(self.grid) >= 4,
            "area",
            f"spans only {self.grid[0]}x{self.grid[1]} grid points at step {self.step}; at least 4x4 are needed",
        )
        require(self.retries >= 0, "retries", f"must be >= 0, got {self.retries}")
        require(self.retry_delay_s >= 0, "retry_delay_s", f"must be >= 0, got {self.retry_delay_s}")
        require(1 <= self.workers <= 8, "workers", f"must be 1..8, got {self.workers}")
        self.processing.check_grid(self.months, self.grid)

    @property
    def grid(self) -> tuple[int, int]:
        """(latitude, longitude) grid points of the area."""
        north, west, south, east = self.area
        return round((north - south) / self.step) + 1, round((east - west) / self.step) + 1

    @property
    def video_frames(self) -> int:
        return self.processing.video_frames

    def input_dir(self, name: str, paths) -> Path:
        """Where `download_era5` writes the monthly files (what `prepare` reads)."""
        return paths.raw_dir(name)
