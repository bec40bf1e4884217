"""The `era5` source kind: ERA5-Land months downloaded by the `download_era5` stage
(`syncvp.data.era5`) and cut into clips by `syncvp.data.era5_clips`."""

from __future__ import annotations

import xarray as xr

from syncvp.data import era5_clips
from syncvp.progress import ProgressFn, no_progress


def dataset_constants(name: str, cfg, paths) -> dict:
    """{"norm": {field: [min, max, how]}}, the normalisation constants of every split (JSON-able).

    Every month of every split is checked first (`era5_clips.check_months`), so a bad month
    stops `prepare` before any store is built.
    """
    raw = cfg.source.input_dir(name, paths)
    era5_clips.check_months(cfg.source, tuple(cfg.modalities), raw)  # a bad month stops prepare here
    return {"norm": era5_clips.norm_constants(cfg.source.processing, tuple(cfg.modalities), raw)}


def prepare_split(name: str, cfg, paths, split: str, constants: dict,
                  progress: ProgressFn = no_progress) -> xr.Dataset:
    """The clip store of one split, normalised with `constants["norm"]`."""
    return era5_clips.prepare_split(name, cfg, cfg.source.input_dir(name, paths), split, constants["norm"], progress)


raw_videos = None  # weather fields: no RGB frames to estimate depth from
