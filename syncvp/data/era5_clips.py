"""ERA5-Land months -> clip stores (`prepare` for the `era5` and `synthetic_era5` sources).

Each split is a list of months; each month file (`era5-land_YYYY-MM.nc`, either CDS layout) is
cropped, cut into videos of `video_frames` consecutive time steps every `stride` steps (videos
never cross a month boundary, so no clip spans two splits), and resized to the dataset
resolution. The store holds one float32 field modality per variable in physical units (t2m in
K, sp in Pa; NaN where missing) plus a `valid` mask (1 where every variable is finite: land).

Bad months never pass silently: before any store is built, `check_months` reads every month of
every split and raises `Era5FileError` (one line naming the file) for a month that fails the
checks of a download (variables, days x hours, the grid of the configured area and step), lies
on another grid than the first month, or has a variable with no finite value in the crop.

Normalisation constants (`norm_min`/`norm_max` on each field) come from `processing.normalization`:

- "metadata": the range fixed by the int16 packing of old CDS files, `add_offset ± 32767
  scale_factor` (codes -32767..32767 span it), or CF `actual_range` / `valid_min`/`valid_max`,
  widened over every month of every split; files without such metadata (new CDS float32 files)
  are an error that says to use "train" or "fixed";
- "train": min and max over the valid points of the training months (after the crop);
- "fixed": the configured values.

Model space is `transforms.field_to_model` (min-max to [-1, 1], invalid -> -1, i.e. the paper's
"NaN -> 0" in [0, 1] units) and `transforms.model_to_field` maps predictions back to K / Pa.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import xarray as xr

from syncvp.config.loader import to_plain
from syncvp.data import store, transforms
from syncvp.data.era5 import Era5FileError, check_month_layout, describe_grid, month_request, open_month
from syncvp.io.netcdf import NETCDF_LOCK
from syncvp.data.synthetic_era5 import VARIABLES, month_filename
from syncvp.progress import ProgressFn, ProgressEvent, no_progress

_INTERP = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR}


def month_path(raw_dir: str | Path, month: str) -> Path:
    path = Path(raw_dir) / month_filename(month)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `download_era5` (or `synthesize`) for this dataset, "
                                f"and check that month {month} is in the source's `months`")
    return path


def read_month(path: str | Path, names: tuple[str, ...], crop) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """One month, cropped: times [T], fields {name: float32 [T, H, W]} (NaN where invalid), and
    `valid` bool [T, H, W] (every field finite). A crop beyond the file's grid, a variable with
    no finite value (in the crop) or no point where every variable is finite is an
    `Era5FileError` naming the file and the variables."""
    return _crop_fields(Path(path), open_month(path), names, crop)


def _crop_fields(path: Path, ds: xr.Dataset, names: tuple[str, ...], crop) -> tuple:
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise Era5FileError(f"{path}: lacks {missing} (it holds {sorted(ds.data_vars)})")
    where = ""
    if crop is not None:
        row, col, height, width = crop
        if row + height > ds.sizes["latitude"] or col + width > ds.sizes["longitude"]:
            raise Era5FileError(f"{path}: processing.crop {list(crop)} does not fit its "
                                f"{ds.sizes['latitude']}x{ds.sizes['longitude']} grid ({_grid(ds)})")
        ds = ds.isel(latitude=slice(row, row + height), longitude=slice(col, col + width))
        where = f" within processing.crop {list(crop)}"
    fields = {n: ds[n].transpose("time", "latitude", "longitude").values.astype(np.float32) for n in names}
    empty = [n for n, f in fields.items() if not np.isfinite(f).any()]
    if empty:
        which = f"{', '.join(map(repr, empty))} {'has' if len(empty) == 1 else 'have'}"
        raise Era5FileError(f"{path}: {which} no finite value in any of the {ds.sizes['time']} time steps{where} "
                            "(a damaged month, or sea only): fetch or write the month again, or drop it from "
                            "processing.splits")
    for n, f in fields.items():
        blank = ~np.isfinite(f).any(axis=(1, 2))
        if blank.any():
            times = np.datetime_as_string(ds["time"].values[blank][:3], unit="h")
            raise Era5FileError(f"{path}: {n!r} has no finite value at {int(blank.sum())} of its {len(blank)} time "
                                f"steps{where} ({', '.join(times)}{'...' if blank.sum() > 3 else ''}): a damaged or "
                                "incomplete month; fetch or write it again, or drop it from processing.splits")
    valid = np.logical_and.reduce([np.isfinite(f) for f in fields.values()])
    if not valid.any():
        raise Era5FileError(f"{path}: {', '.join(map(repr, names))} are never finite at the same point{where}, "
                            "so the month has no valid point")
    fields = {n: np.where(valid, f, np.float32(np.nan)) for n, f in fields.items()}
    return ds["time"].values, fields, valid


def _grid(ds: xr.Dataset) -> str:
    return describe_grid(ds["latitude"].values, ds["longitude"].values)


def check_months(source, names: tuple[str, ...], raw_dir: str | Path) -> None:
    """Check every month of every split before any store is built (`prepare.dataset_constants`
    calls it first); raise `Era5FileError` naming the file.

    Each month must pass the layout checks of a download against the source's request
    (variables, days x hours, the grid of the configured area and step), lie on the same grid
    as the first month (no month is silently resized to match the others), and pass
    `read_month` (crop inside the grid, every variable finite somewhere in the crop).
    """
    first = None
    for month in source.processing.splits.months:
        path = month_path(raw_dir, month)
        ds = open_month(path)
        check_month_layout(path, ds, month_request(source, month))
        if first is None:
            first = (path, ds["latitude"].values, ds["longitude"].values)
        elif not _same_grid(ds, first[1], first[2], source.step):
            raise Era5FileError(f"{path}: its grid ({_grid(ds)}) is not the grid of {first[0].name} "
                                f"({describe_grid(first[1], first[2])}); every month must lie on one grid")
        _crop_fields(path, ds, names, source.processing.crop)


def _same_grid(ds: xr.Dataset, lat: np.ndarray, lon: np.ndarray, step: float) -> bool:
    mine = ds["latitude"].values, ds["longitude"].values
    return all(len(a) == len(b) and np.allclose(a, b, rtol=0, atol=0.01 * step) for a, b in zip(mine, (lat, lon)))


def metadata_range(path: str | Path, name: str) -> tuple[float, float]:
    """The value range a file's metadata fixes for one variable (see the module docstring)."""
    with NETCDF_LOCK, xr.open_dataset(path, engine="netcdf4", mask_and_scale=False, decode_times=False) as ds:
        if name not in ds.data_vars:
            raise Era5FileError(f"{path}: lacks {name!r}")
        attrs, dtype = ds[name].attrs, ds[name].dtype
    if "scale_factor" in attrs and np.issubdtype(dtype, np.integer):
        scale, offset = float(attrs["scale_factor"]), float(attrs.get("add_offset", 0.0))
        half = float(np.iinfo(dtype).max)
        return offset - half * scale, offset + half * scale
    if "actual_range" in attrs:
        lo, hi = np.asarray(attrs["actual_range"], dtype=np.float64)[:2]
        return float(lo), float(hi)
    if "valid_min" in attrs and "valid_max" in attrs:
        return float(attrs["valid_min"]), float(attrs["valid_max"])
    raise Era5FileError(f"{path}: {name!r} is stored as {dtype} without packing or range attributes, so the metadata "
                        "fixes no min/max (new CDS files are plain float32): set processing.normalization to "
                        "'train' or 'fixed'")


def norm_constants(processing, names: tuple[str, ...], raw_dir: str | Path) -> dict[str, list]:
    """{name: [min, max, how]} for each variable (the store's norm_min / norm_max)."""
    how = processing.normalization
    if how == "fixed":
        return {n: [float(processing.fixed_range[n][0]), float(processing.fixed_range[n][1]), how] for n in names}
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    months = processing.splits.months if how == "metadata" else processing.splits.train
    for month in months:
        path = month_path(raw_dir, month)
        if how == "metadata":
            ranges = {n: metadata_range(path, n) for n in names}
        else:
            fields, valid = read_month(path, names, processing.crop)[1:]
            ranges = {n: (float(f[valid].min()), float(f[valid].max())) if valid.any() else (np.inf, -np.inf)
                      for n, f in fields.items()}
        for n, (a, b) in ranges.items():
            lo[n], hi[n] = min(lo[n], a), max(hi[n], b)
    for n in names:
        if not (np.isfinite(lo[n]) and np.isfinite(hi[n]) and lo[n] < hi[n]):
            raise Era5FileError(f"{raw_dir}: {n!r} has no usable range over months {list(months)} "
                                f"(min {lo[n]}, max {hi[n]}); choose another processing.normalization")
    return {n: [lo[n], hi[n], how] for n in names}


def video_starts(steps: int, frames: int, stride: int) -> list[int]:
    """Start indices of the videos of `frames` steps every `stride` steps within `steps` steps."""
    return list(range(0, steps - frames + 1, stride))


def resize_fields(fields: dict[str, np.ndarray], valid: np.ndarray, size: tuple[int, int],
                  mode: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Resize [T, H, W] fields and their mask to `size` = (height, width).

    The mask is resized nearest-neighbour. "nearest" picks values the same way; "area" and
    "bilinear" average only valid points (normalised convolution: resize(x * m) / resize(m)),
    so sea never bleeds into land values. Points left without valid neighbours become invalid.
    """
    if valid.shape[1:] == tuple(size):
        return fields, valid
    new_valid = transforms.resize_frames(valid.astype(np.uint8), size, "nearest").astype(bool)
    if mode == "nearest":
        out = {n: transforms.resize_frames(f, size, "nearest") for n, f in fields.items()}
    else:
        h, w = size
        weight = np.stack([cv2.resize(m, (w, h), interpolation=_INTERP[mode]) for m in valid.astype(np.float64)])
        new_valid &= weight > 1e-9
        out = {}
        for n, f in fields.items():
            num = np.stack([cv2.resize(x, (w, h), interpolation=_INTERP[mode])
                            for x in np.where(valid, f, 0.0).astype(np.float64)])
            out[n] = (num / np.maximum(weight, 1e-12)).astype(np.float32)
    return {n: np.where(new_valid, f, np.float32(np.nan)) for n, f in out.items()}, new_valid


def _field_attrs(name: str, norm: list) -> dict:
    meta = VARIABLES[name]
    return {"units": meta["units"], "long_name": meta["long_name"], "cds_name": meta["cds_name"],
            "norm_min": np.float64(norm[0]), "norm_max": np.float64(norm[1]), "norm_source": norm[2]}


def prepare_split(name: str, cfg, raw_dir: str | Path, split: str, norm: dict[str, list],
                  progress: ProgressFn = no_progress) -> xr.Dataset:
    """The clip store of one split: fields {modality: float32 [V, F, H, W]}, `valid`, video ids
    (the first time step of each video, e.g. "2020-01-01T00")."""
    proc = cfg.source.processing
    names = tuple(cfg.modalities)
    months = proc.splits.as_dict()[split]
    chunks: dict[str, list] = {n: [] for n in names}
    masks, ids = [], []
    for i, month in enumerate(months):
        times, fields, valid = read_month(month_path(raw_dir, month), names, proc.crop)
        fields, valid = resize_fields(fields, valid, tuple(cfg.resolution), proc.resize)
        for start in video_starts(len(times), proc.video_frames, proc.stride):
            window = slice(start, start + proc.video_frames)
            for n in names:
                chunks[n].append(fields[n][window])
            masks.append(valid[window])
            ids.append(np.datetime_as_string(times[start], unit="h"))
        progress(ProgressEvent(task=f"prepare {split}", done=i + 1, total=len(months), message=month))
    if not ids:
        raise ValueError(f"dataset {name!r}: split {split!r} ({list(months)}) yields no video of "
                         f"{proc.video_frames} time steps")
    arrays = {n: np.stack(chunks[n]) for n in names}
    prov = {"source": to_plain(cfg.source), "resolution": list(cfg.resolution), "months": list(months),
            "raw": str(raw_dir), "normalization": {n: norm[n] for n in names}}
    return store.build_dataset(arrays, dataset=name, split=split, valid=np.stack(masks), video_ids=ids,
                               modality_attrs={n: _field_attrs(n, norm[n]) for n in names}, provenance=prov)


def to_physical(values: np.ndarray, attrs: dict) -> np.ndarray:
    """Model-space [-1, 1] values of a field -> physical units (K, Pa) with its store attrs."""
    return transforms.model_to_field(values, float(attrs["norm_min"]), float(attrs["norm_max"]))
