"""Raw RGB videos of a dataset, before `prepare`: what per-video data stages (Depth-Anything-V2
pseudo-labels) iterate over.

Each source kind that has RGB frames registers a lister `(name, config, raw_dir) -> [RawVideo]`;
`RawVideo.load()` returns RGB uint8 [T, H, W, 3] at the source's native resolution, and
`RawVideo.files` names the files it reads (their content keys per-video caches).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

from syncvp.config import DatasetConfig
from syncvp.io.netcdf import NETCDF_LOCK


@dataclass(frozen=True)
class RawVideo:
    """One raw video: where it comes from and how to read its RGB frames."""

    split: str
    video_id: str
    files: tuple[Path, ...]
    load: Callable[[], np.ndarray]


Lister = Callable[[str, DatasetConfig, Path], list[RawVideo]]
_LISTERS: dict[str, Lister] = {}


def register(kind: str) -> Callable[[Lister], Lister]:
    """Decorator: register the raw-video lister of a source kind."""

    def wrap(fn: Lister) -> Lister:
        _LISTERS[kind] = fn
        return fn

    return wrap


# Source modules that register listers (imported on first use: they import this module).
_SOURCE_MODULES = ("syncvp.data.synthia", "syncvp.data.image_sequence", "syncvp.data.video_file")


def raw_videos(name: str, config: DatasetConfig, raw_dir: Path) -> list[RawVideo]:
    """Every raw RGB video of a dataset, in split and then video order."""
    for module in _SOURCE_MODULES:
        importlib.import_module(module)
    kind = config.source.kind
    if kind not in _LISTERS:
        raise ValueError(f"dataset {name!r}: source kind {kind!r} has no raw RGB videos (known: {sorted(_LISTERS)})")
    return _LISTERS[kind](name, config, raw_dir)


def _store_video(path: Path, index: int) -> np.ndarray:
    with NETCDF_LOCK, xr.open_dataset(path, engine="netcdf4", mask_and_scale=False) as ds:
        return ds["rgb"].values[index]


@register("synthetic_video")
def _synthetic_videos(name: str, config: DatasetConfig, raw_dir: Path) -> list[RawVideo]:
    out = []
    for split, count in config.source.videos.as_dict().items():
        path = raw_dir / f"{split}.nc"
        for i in range(count):
            out.append(RawVideo(split=split, video_id=f"{split}-{i:04d}", files=(path,),
                                load=lambda p=path, i=i: _store_video(p, i)))
    return out
