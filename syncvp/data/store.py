"""The clip store: the one processed format every dataset ends in.

One netCDF4 file per dataset and split, written with xarray:

- one variable per modality, dims `(video, frame, y, x)` or `(video, frame, y, x, <name>_channel)`;
  `kind="image"` variables are uint8 (0-255), `kind="field"` variables are float32 in physical
  units with `units`, `norm_min`, `norm_max` attributes (model space is the min-max range mapped
  to [-1, 1]);
- an optional `valid` mask (video, frame, y, x), uint8 0/1, where data is missing (ERA5 sea);
  fields may hold NaN only where `valid` is 0;
- an optional `video_id` string per video (provenance);
- global attributes: `syncvp_store_version`, `dataset`, `split`, `modalities` (comma separated,
  in order) and `provenance` (JSON, no timestamps, so equal inputs give equal bytes).

Variables are chunked one video per chunk, so a loader reads one clip without touching the rest.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import xarray as xr

from syncvp.io.atomic import atomic_path
from syncvp.io.netcdf import NETCDF_LOCK

STORE_VERSION = 1
BASE_DIMS = ("video", "frame", "y", "x")
Kind = Literal["image", "field"]
_DTYPES = {"image": np.dtype(np.uint8), "field": np.dtype(np.float32)}


class StoreError(ValueError):
    """A clip store is malformed or does not hold what was asked for."""


@dataclass(frozen=True)
class ModalityInfo:
    """What one modality variable holds."""

    name: str
    kind: Kind
    channels: int
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoreInfo:
    """Shape and metadata of a validated store."""

    path: str
    dataset: str
    split: str
    videos: int
    frames: int
    height: int
    width: int
    modalities: dict[str, ModalityInfo]
    has_valid: bool
    attrs: dict[str, Any]

    @property
    def provenance(self) -> dict[str, Any]:
        return json.loads(self.attrs.get("provenance", "{}"))


def channel_dim(name: str) -> str:
    return f"{name}_channel"


# --------------------------------------------------------------------------------------------
# Validation


def _err(source: str, message: str) -> StoreError:
    return StoreError(f"clip store {source}: {message}")


def _check_modality(ds: xr.Dataset, name: str, source: str, frames: int) -> ModalityInfo:
    if name not in ds.variables:
        raise _err(source, f"missing modality {name!r} (listed in its 'modalities' attribute)")
    var = ds[name]
    dims = var.dims
    if len(dims) >= 2 and dims[1] != "frame":
        raise _err(source, f"frame-count mismatch: modality {name!r} has {var.shape[1]} frames "
                           f"(dimension {dims[1]!r}), the store has {frames}")
    if dims[:4] != BASE_DIMS or len(dims) not in (4, 5) or (len(dims) == 5 and dims[4] != channel_dim(name)):
        want = f"{BASE_DIMS} or {BASE_DIMS + (channel_dim(name),)}"
        raise _err(source, f"modality {name!r} has dims {dims}, expected {want}")
    kind = var.attrs.get("kind")
    if kind not in _DTYPES:
        raise _err(source, f"modality {name!r} has kind {kind!r}, expected 'image' or 'field'")
    if var.dtype != _DTYPES[kind]:
        raise _err(source, f"modality {name!r} is {var.dtype}, but kind {kind!r} must be {_DTYPES[kind]}")
    if kind == "field":
        for key in ("units", "norm_min", "norm_max"):
            if key not in var.attrs:
                raise _err(source, f"field modality {name!r} lacks the {key!r} attribute")
        lo, hi = float(var.attrs["norm_min"]), float(var.attrs["norm_max"])
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise _err(source, f"field modality {name!r} has norm_min={lo}, norm_max={hi}; need finite min < max")
    channels = var.shape[4] if len(dims) == 5 else 1
    return ModalityInfo(name=name, kind=kind, channels=channels, attrs=dict(var.attrs))


def _check_valid(ds: xr.Dataset, source: str) -> None:
    var = ds["valid"]
    if var.dims != BASE_DIMS:
        raise _err(source, f"'valid' has dims {var.dims}, expected {BASE_DIMS}")
    if var.dtype not in (np.uint8, np.bool_):
        raise _err(source, f"'valid' is {var.dtype}, expected uint8 (0/1)")


def _check_nan(ds: xr.Dataset, info: ModalityInfo, source: str) -> None:
    values = ds[info.name].values
    bad = np.isnan(values)
    if bad.ndim == 5:
        bad = bad.any(axis=4)
    where = "anywhere (the store has no 'valid' mask)"
    if "valid" in ds.variables:
        bad &= ds["valid"].values.astype(bool)
        where = "where 'valid' says the data is valid"
    if bad.any():
        first = tuple(int(i[0]) for i in np.nonzero(bad))
        raise _err(source, f"modality {info.name!r} has {int(bad.sum())} NaN values {where} "
                           f"(first at video, frame, y, x = {first})")


def validate(ds: xr.Dataset, source: str = "<memory>", *, deep: bool = False,
             require: Sequence[str] = ()) -> StoreInfo:
    """Check that `ds` is a well-formed clip store and return what it holds.

    Args:
        ds: the opened dataset.
        source: a name for messages (usually the path).
        deep: also read the data to check for NaN where values must be valid (reads everything).
        require: modality names the caller needs; a missing one is an error naming it.
    """
    version = ds.attrs.get("syncvp_store_version")
    if version != STORE_VERSION:
        raise _err(source, f"syncvp_store_version is {version!r}, expected {STORE_VERSION}")
    for key in ("dataset", "split", "modalities"):
        if key not in ds.attrs:
            raise _err(source, f"lacks the global attribute {key!r}")
    names = [n for n in str(ds.attrs["modalities"]).split(",") if n]
    if not names:
        raise _err(source, "lists no modalities")
    for name in require:
        if name not in names:
            raise _err(source, f"has no modality {name!r} (it holds {names})")
    frames = ds.sizes.get("frame", 0)
    infos = {n: _check_modality(ds, n, source, frames) for n in names}
    has_valid = "valid" in ds.variables
    if has_valid:
        _check_valid(ds, source)
    if deep:
        for info in infos.values():
            if info.kind == "field":
                _check_nan(ds, info, source)
    return StoreInfo(path=source, dataset=str(ds.attrs["dataset"]), split=str(ds.attrs["split"]),
                     videos=ds.sizes["video"], frames=frames, height=ds.sizes["y"], width=ds.sizes["x"],
                     modalities=infos, has_valid=has_valid, attrs=dict(ds.attrs))


def read_info(path: str | Path, *, deep: bool = False, require: Sequence[str] = ()) -> StoreInfo:
    """Open, validate and close a store; a missing file is a `StoreError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"clip store {path} does not exist (has the `prepare` stage run?)")
    with NETCDF_LOCK, xr.open_dataset(path, engine="netcdf4", mask_and_scale=False) as ds:
        return validate(ds, str(path), deep=deep, require=require)


# --------------------------------------------------------------------------------------------
# Writing


def build_dataset(arrays: Mapping[str, np.ndarray], *, dataset: str, split: str,
                  modality_attrs: Mapping[str, Mapping[str, Any]] | None = None,
                  valid: np.ndarray | None = None, video_ids: Sequence[str] | None = None,
                  provenance: Mapping[str, Any] | None = None) -> xr.Dataset:
    """Assemble an in-memory store. uint8 arrays become images, float32 arrays fields.

    Args:
        arrays: modality name -> [V, F, H, W] or [V, F, H, W, C] array, in modality order.
        modality_attrs: extra attributes per modality (fields need units, norm_min, norm_max).
        valid: optional [V, F, H, W] mask (nonzero = valid).
        video_ids: optional provenance id per video.
        provenance: JSON-able description of how the store was made (no timestamps).
    """
    modality_attrs = modality_attrs or {}
    data_vars = {}
    for name, arr in arrays.items():
        kind = "image" if arr.dtype == np.uint8 else "field" if arr.dtype == np.float32 else None
        if kind is None:
            raise StoreError(f"modality {name!r}: dtype {arr.dtype} is neither uint8 (image) nor float32 (field)")
        if arr.ndim not in (4, 5):
            raise StoreError(f"modality {name!r}: expected [V, F, H, W(, C)], got shape {arr.shape}")
        dims = BASE_DIMS + ((channel_dim(name),) if arr.ndim == 5 else ())
        data_vars[name] = xr.Variable(dims, arr, attrs={"kind": kind, **dict(modality_attrs.get(name, {}))})
    if valid is not None:
        data_vars["valid"] = xr.Variable(BASE_DIMS, (np.asarray(valid) != 0).astype(np.uint8),
                                         attrs={"meaning": "1 where data is valid, 0 where missing"})
    if video_ids is not None:
        data_vars["video_id"] = xr.Variable(("video",), np.asarray(list(video_ids), dtype=object))
    attrs = {"syncvp_store_version": STORE_VERSION, "dataset": dataset, "split": split,
             "modalities": ",".join(arrays), "provenance": json.dumps(provenance or {}, sort_keys=True)}
    return xr.Dataset(data_vars, attrs=attrs)


def _encoding(ds: xr.Dataset, complevel: int) -> dict[str, dict]:
    enc = {}
    for name, var in ds.data_vars.items():
        if name == "video_id":
            enc[name] = {}
            continue
        chunks = (1,) + var.shape[1:]
        enc[name] = {"zlib": complevel > 0, "complevel": complevel, "chunksizes": chunks}
        enc[name]["_FillValue"] = np.float32(np.nan) if var.dtype == np.float32 else None
    return enc


def write_store(path: str | Path, ds: xr.Dataset, *, complevel: int = 1) -> StoreInfo:
    """Validate `ds` (deeply) and write it atomically to `path` as netCDF4.

    Any source encoding (e.g. ERA5 int16 packing) is dropped first: derived variables are
    always written as plain uint8/float32.
    """
    path = Path(path)
    info = validate(ds, str(path), deep=True)
    ds = ds.copy()
    for var in ds.variables.values():
        var.encoding = {}
    with atomic_path(path) as tmp:
        with NETCDF_LOCK:
            ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=_encoding(ds, complevel))
    return info


# --------------------------------------------------------------------------------------------
# Reading


_HANDLES: dict[tuple[str, int], list] = {}  # (path, pid) -> [netCDF4.Dataset, readers using it]


def _acquire(path: Path):
    """The process's shared read handle of `path` (one per file: a second HDF5 handle on the same
    file, later closed, has crashed xarray opens of that file)."""
    import netCDF4

    key = (str(path.resolve()), os.getpid())
    with NETCDF_LOCK:
        entry = _HANDLES.get(key)
        if entry is None:
            handle = netCDF4.Dataset(path, "r")
            handle.set_auto_maskandscale(False)
            entry = _HANDLES[key] = [handle, 0]
        entry[1] += 1
        return entry[0]


def _release(path: Path) -> None:
    key = (str(path.resolve()), os.getpid())
    with NETCDF_LOCK:
        entry = _HANDLES.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            entry[0].close()
            del _HANDLES[key]


class StoreReader:
    """Reads clips from one store; safe to copy into DataLoader worker processes.

    The netCDF handle is opened lazily in each process (HDF5 handles must not cross a fork) and
    shared by the readers of the same file in that process; reads hold the process-wide netCDF
    lock (HDF5 is not thread-safe). With `preload=True` every requested modality is read into
    memory once.
    """

    def __init__(self, path: str | Path, modalities: Sequence[str], *, preload: bool = False):
        self.path = Path(path)
        self.info = read_info(self.path, require=modalities)
        self.modalities = tuple(modalities)
        self._cache: dict[str, np.ndarray] | None = None
        self._handle = None
        self._pid = None
        if preload:
            with NETCDF_LOCK, xr.open_dataset(self.path, engine="netcdf4", mask_and_scale=False) as ds:
                names = list(self.modalities) + (["valid"] if self.info.has_valid else [])
                self._cache = {n: ds[n].values for n in names}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handle"], state["_pid"] = None, None
        return state

    def _nc(self):
        if self._handle is None or self._pid != os.getpid():
            self._handle, self._pid = _acquire(self.path), os.getpid()
        return self._handle

    def read(self, name: str, video: int, start: int, length: int) -> np.ndarray:
        """Frames `[start, start+length)` of one video: [T, H, W] or [T, H, W, C]."""
        if self._cache is not None:
            return self._cache[name][video, start:start + length]
        with NETCDF_LOCK:
            return np.asarray(self._nc().variables[name][video, start:start + length])

    def close(self) -> None:
        """Release this reader's share of the handle (the file closes with its last reader)."""
        if self._handle is not None and self._pid == os.getpid():
            _release(self.path)
        self._handle = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may already be gone
            pass
