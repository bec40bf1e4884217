"""`prepare`: raw inputs -> clip stores, dispatched by source kind; plus a preview and a summary.

Each source kind has its own module in `syncvp.data.sources` (the `SOURCES` table).
`dataset_constants` computes what every split needs once (ERA5 normalisation constants), then
`prepare_split` builds one split's store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from syncvp import figures, viz
from syncvp.config import DatasetConfig
from syncvp.data import store
from syncvp.data.sources import source_kind
from syncvp.io.netcdf import NETCDF_LOCK
from syncvp.progress import ProgressFn, no_progress


def dataset_constants(name: str, cfg: DatasetConfig, paths) -> dict:
    """Values every split of a dataset needs, computed once (JSON-able): {"norm": {field: [min,
    max, how]}} for ERA5 sources, {} otherwise. For ERA5 sources every month of every split is
    checked first, so a bad month stops `prepare` before any store is built."""
    return source_kind(name, cfg).dataset_constants(name, cfg, paths)


def prepare_split(name: str, cfg: DatasetConfig, paths, split: str, constants: dict,
                  progress: ProgressFn = no_progress) -> xr.Dataset:
    """The clip store of one split of any source kind (in memory; `store.write_store` writes it)."""
    return source_kind(name, cfg).prepare_split(name, cfg, paths, split, constants, progress)


def preview(store_path: Path, out: Path, videos: int = 4, frames: int = 10) -> Path:
    """A labelled PNG with, for a few videos, one row per modality over the first frames: the
    variable's name on the left, a colour bar in physical units for fields (grey: no data), a
    legend for class maps."""
    info = store.read_info(store_path)
    rows, names, keys = [], [], []
    with NETCDF_LOCK, xr.open_dataset(store_path, engine="netcdf4", mask_and_scale=False) as ds:
        valid = ds["valid"].values if info.has_valid else None
        for v in range(min(videos, info.videos)):
            for name, meta in info.modalities.items():
                x = ds[name].values[v, :frames]
                lo, hi = (float(meta.attrs.get("norm_min", 0)), float(meta.attrs.get("norm_max", 1)))
                classes = figures.class_names(meta.attrs)
                mask = None if valid is None else valid[v, :frames]
                rows.append(list(figures.display(x, meta.kind, lo, hi, mask, classes=len(classes))))
                if meta.kind == "field":
                    units = str(meta.attrs.get("units", ""))
                    names.append([f"video {v + 1}", f"{name} [{units}]" if units else name])
                    keys.append(figures.ColourBar(lo, hi, units, valid is not None))
                else:
                    names.append([f"video {v + 1}", name])
                    keys.append(figures.Legend(classes) if classes else None)
    heads = [f"t={t}" for t in range(len(rows[0]))]
    title = f"{Path(store_path).parent.name} {Path(store_path).stem}: the first {len(heads)} frames of each video"
    image = figures.labelled_grid(rows, names, heads, figures.display_scale(info.height), keys=keys, title=title)
    return viz.save_png(out, image)


def summary(stores: dict[str, Path]) -> dict:
    """Per split: videos, frames, size, and each modality's attributes (a JSON-able dict)."""
    out = {}
    for split, path in stores.items():
        info = store.read_info(path)
        out[split] = {"videos": info.videos, "frames": info.frames, "height": info.height, "width": info.width,
                      "modalities": {n: {"kind": m.kind, "channels": m.channels,
                                         **{k: _plain(v) for k, v in m.attrs.items()}}
                                     for n, m in info.modalities.items()}}
    return out


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
