"""ERA5-Land through cdsapi: one request per month, validated files, atomic writes.

A month is requested as (new-CDS spelling)::

    {"variable": ["2m_temperature", "surface_pressure"], "year": "2020", "month": "01",
     "day": ["01", ..., "31"], "time": ["00:00", ...], "area": [N, W, S, E],
     "grid": [step, step], "data_format": "netcdf", "download_format": "unarchived"}

and lands in `<raw>/<dataset>/era5-land_YYYY-MM.nc` (the name `synthesize` uses for the
synthetic source), next to `era5-land_YYYY-MM.request.json`, the request it answers, and
`era5-land_YYYY-MM.nc.md5`, the md5 of the file as it was checked (`md5sum -c` reads it). The
download goes to a temporary sibling; it is renamed only after it opens with xarray and holds
the requested variables and exactly the requested time steps, so a truncated or wrong file is
never taken for a finished month. CDS has served two layouts (time dim `valid_time` + float32,
or `time` + int16 packing) and sometimes wraps netCDF in a zip; `open_month` reads both and
`unwrap_zip` unpacks (and merges) zipped members.

The cdsapi client is made by an injected factory, only when a month must be downloaded. The
default factory keeps cdsapi's own retries short (its defaults retry for hours); the caller
(a Prefect task) owns retries with backoff. Credentials stay with cdsapi (~/.cdsapirc or
CDSAPI_URL / CDSAPI_KEY); nothing here reads, logs or writes them.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import xarray as xr

from syncvp.data.synthetic_era5 import VARIABLES, month_days, month_filename
from syncvp.io.atomic import atomic_path, write_json, write_text
from syncvp.io.digest import file_md5
from syncvp.io.netcdf import NETCDF_LOCK

DATASET = "reanalysis-era5-land"
CDS_NAMES = {meta["cds_name"]: name for name, meta in VARIABLES.items()}  # 2m_temperature -> t2m
ClientFactory = Callable[[], Any]
# Months are downloaded in threads: every netCDF read or write here holds syncvp.io.netcdf's
# process-wide lock (downloads themselves do not).


class Era5Error(RuntimeError):
    """A month could not be obtained."""


class Era5CredentialsError(Era5Error):
    """No CDS credentials: retrying cannot help."""


class Era5FileError(Era5Error):
    """A month file is unreadable or does not hold what was requested."""


# --------------------------------------------------------------------------------------------
# Requests


def month_request(source, month: str) -> dict:
    """The cdsapi request of one month of an `era5` source (every day of the month); for a
    `synthetic_era5` source, the request its generated file answers (every hour, its grid)."""
    year, mon = month.split("-")
    if source.kind == "synthetic_era5":
        (ny, nx), step = source.grid, source.step
        area, hours = (source.north, source.west, source.north - step * (ny - 1), source.west + step * (nx - 1)), range(24)
    else:
        area, hours = source.area, source.hours
    return {
        "variable": [VARIABLES[name]["cds_name"] for name in source.provides],
        "year": year,
        "month": mon,
        "day": month_days(month),
        "time": [f"{h:02d}:00" for h in hours],
        "area": [float(v) for v in area],
        "grid": [float(source.step), float(source.step)],
        "data_format": "netcdf",
        "download_format": "unarchived",
    }


def expected_times(request: dict) -> np.ndarray:
    """The time steps a request asks for, sorted, datetime64[ns]."""
    stamps = [f"{request['year']}-{request['month']}-{day}T{t}" for day in request["day"] for t in request["time"]]
    return np.sort(np.array(stamps, dtype="datetime64[ns]"))


def request_file(target: Path) -> Path:
    """The sidecar recording the request a month file answers."""
    target = Path(target)
    return target.with_name(target.name.removesuffix(".nc") + ".request.json")


def checksum_file(target: Path) -> Path:
    """The sidecar recording the md5 of a month file as it was checked (md5sum's format)."""
    target = Path(target)
    return target.with_name(target.name + ".md5")


def record_checksum(target: Path) -> str:
    """Write `checksum_file(target)` for the file as it is now; returns the digest."""
    digest = file_md5(target)
    write_text(checksum_file(target), f"{digest}  {Path(target).name}\n")
    return digest


def recorded_checksum(target: Path) -> str | None:
    """The md5 `checksum_file(target)` records, or None when it is missing or unreadable."""
    try:
        digest = checksum_file(target).read_text().split()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        return None
    return digest if re.fullmatch(r"[0-9a-f]{32}", digest) else None


def cds_client_factory(*, retry_max: int = 3, sleep_max: float = 10.0, timeout: float = 120.0) -> ClientFactory:
    """A factory of quiet cdsapi clients with short internal retries (cdsapi's defaults are
    retry_max=500, sleep_max=120: hours of retrying when offline)."""

    def make():
        import cdsapi

        return cdsapi.Client(quiet=True, progress=False, retry_max=retry_max, sleep_max=sleep_max, timeout=timeout)

    return make


def _client(factory: ClientFactory):
    try:
        return factory()
    except Exception as exc:  # cdsapi raises a bare Exception when no credentials are found
        text = str(exc)
        if "configuration file" in text or "cdsapirc" in text or "not the correct format" in text:
            problem = "a malformed CDS key" if "format" in text else "no CDS credentials"
            raise Era5CredentialsError(
                f"{problem}: create ~/.cdsapirc with the lines `url: https://cds.climate.copernicus.eu/api` "
                "and `key: <your personal access token>` (or set CDSAPI_URL and CDSAPI_KEY), and accept the "
                "ERA5-Land licence on the dataset's web page once") from None
        raise


# --------------------------------------------------------------------------------------------
# Files


def _normalise(path: Path, ds: xr.Dataset) -> xr.Dataset:
    """Time dim `time` (sorted), latitude north -> south, no `number`/`expver` coordinates."""
    if "valid_time" in ds.dims and "time" not in ds.dims:
        ds = ds.rename({"valid_time": "time"})
    ds = ds.drop_vars([c for c in ("number", "expver") if c in ds.variables])
    for dim in ("time", "latitude", "longitude"):
        if dim not in ds.dims:
            raise Era5FileError(f"{path}: has no {dim!r} dimension (dims: {dict(ds.sizes)})")
    return ds.sortby("time").sortby("latitude", ascending=False)


def _unreadable(path: Path, exc: Exception) -> Era5FileError:
    return Era5FileError(f"{path}: cannot be read as netCDF ({type(exc).__name__}: {exc})")


def open_month(path: str | Path) -> xr.Dataset:
    """Read a month file of either CDS layout into memory, normalised: time dim `time`
    (sorted), latitude north -> south, no `number`/`expver` coordinates; values decoded (NaN
    where missing)."""
    path = Path(path)
    try:
        with NETCDF_LOCK, xr.open_dataset(path, engine="netcdf4") as ds:
            ds = ds.load()
    except Exception as exc:  # netCDF4/HDF5 raise OSError, RuntimeError or ValueError
        raise _unreadable(path, exc) from None
    return _normalise(path, ds)


def check_month_layout(path: str | Path, ds: xr.Dataset, request: dict) -> dict:
    """The checks of `check_month_file` that read no data values, on an `open_month`-normalised
    dataset (loaded or lazy): every requested variable over (time, latitude, longitude), exactly
    the requested days x hours, the grid of the requested area and step."""
    path = Path(path)
    for cds_name in request["variable"]:
        name = CDS_NAMES.get(cds_name, cds_name)
        if name not in ds.data_vars:
            raise Era5FileError(f"{path}: lacks variable {name!r} ({cds_name}); it holds {sorted(ds.data_vars)}")
        if set(ds[name].dims) != {"time", "latitude", "longitude"}:
            raise Era5FileError(f"{path}: {name!r} has dims {ds[name].dims}, expected time, latitude, longitude")
    want, got = expected_times(request), ds["time"].values.astype("datetime64[ns]")
    if len(got) != len(want) or (got != want).any():
        missing = np.setdiff1d(want, got)
        extra = np.setdiff1d(got, want)
        raise Era5FileError(f"{path}: holds {len(got)} time steps, expected {len(want)} (days x hours of the request); "
                            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                            f"unexpected {extra[:3]}{'...' if len(extra) > 3 else ''}")
    if "area" in request and "grid" in request:
        check_grid(path, ds, request["area"], request["grid"])
    return {"time_steps": int(len(got)), "grid": [int(ds.sizes["latitude"]), int(ds.sizes["longitude"])]}


def check_month_header(path: str | Path, request: dict) -> dict:
    """`check_month_layout` straight from the file, reading only its metadata and coordinates
    (tens of milliseconds, whatever the file's size): it catches a truncated or overwritten
    file, a missing variable, other time steps or another grid, not damaged data values."""
    path = Path(path)
    try:
        with NETCDF_LOCK, xr.open_dataset(path, engine="netcdf4") as ds:
            return check_month_layout(path, _normalise(path, ds), request)
    except Era5FileError:
        raise
    except Exception as exc:
        raise _unreadable(path, exc) from None


def check_month_file(path: str | Path, request: dict) -> dict:
    """Check that a file holds what `request` asked for; raise `Era5FileError` naming the file.

    Checks: it opens and its data reads; it has every requested variable over
    (time, latitude, longitude) with some finite values; its time steps are exactly the
    requested days x hours; its grid spacing is the requested one and it spans the area.
    """
    path = Path(path)
    ds = open_month(path)
    info = check_month_layout(path, ds, request)
    for cds_name in request["variable"]:
        name = CDS_NAMES.get(cds_name, cds_name)
        if not np.isfinite(ds[name].values).any():
            raise Era5FileError(f"{path}: {name!r} holds no finite value (an area over sea only?)")
    return info


def describe_grid(latitude: np.ndarray, longitude: np.ndarray) -> str:
    """A grid in words: "latitude 47..46.3 by 0.1 (8 points), longitude 7..7.7 by 0.1 (8 points)"."""
    def axis(name: str, values: np.ndarray) -> str:
        step = f" by {np.median(np.abs(np.diff(values))):.4g}" if len(values) > 1 else ""
        return f"{name} {values[0]:.6g}..{values[-1]:.6g}{step} ({len(values)} points)"

    return f"{axis('latitude', np.asarray(latitude))}, {axis('longitude', np.asarray(longitude))}"


def requested_grid(area: list, step: float) -> tuple[np.ndarray, np.ndarray]:
    """The latitude (north -> south) and longitude points of `area` = [N, W, S, E] at `step`."""
    north, west, south, east = area
    return (north - step * np.arange(round((north - south) / step) + 1),
            west + step * np.arange(round((east - west) / step) + 1))


def check_grid(path: str | Path, ds: xr.Dataset, area: list, grid: list) -> None:
    """The file's grid has the requested spacing and spans the requested area (to within a
    step at each edge: CDS may align the area to its grid); the error names both grids."""
    north, west, south, east = area
    lat, lon = ds["latitude"].values, ds["longitude"].values
    for axis, values, step, lo, hi in (("latitude", lat, grid[1], south, north), ("longitude", lon, grid[0], west, east)):
        spacing = np.abs(np.diff(values))
        span = f"{axis} spans {values.min():.6g}..{values.max():.6g}"
        if len(values) > 1 and not np.allclose(spacing, step, rtol=0.01, atol=1e-6):
            problem = f"{axis} spacing is {spacing.min():.4g}..{spacing.max():.4g}, not {step:g}"
        elif values.min() < lo - step or values.max() > hi + step:
            problem = f"{span}, outside {lo:g}..{hi:g}"
        elif values.min() > lo + step + 1e-6 or values.max() < hi - step - 1e-6:
            problem = f"{span}, short of {lo:g}..{hi:g}"
        else:
            continue
        want = describe_grid(*requested_grid(area, grid[1]))
        raise Era5FileError(f"{path}: {problem}: the file's grid is {describe_grid(lat, lon)}; the requested one "
                            f"(area {[round(float(v), 6) for v in area]} at step {grid[1]:g}) is {want}")


def unwrap_zip(path: str | Path) -> None:
    """If CDS sent a zip, replace it in place by the netCDF inside (several members are merged)."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        return
    with NETCDF_LOCK, zipfile.ZipFile(path) as zf:
        members = sorted(n for n in zf.namelist() if n.endswith(".nc"))
        if not members:
            raise Era5FileError(f"{path}: a zip without netCDF members ({zf.namelist()})")
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".unzip-") as tmp:
            files = [Path(zf.extract(m, tmp)) for m in members]
            if len(files) == 1:
                shutil.copyfile(files[0], path)
                return
            parts = []
            for f in files:
                with xr.open_dataset(f, engine="netcdf4") as part:
                    parts.append(part.load())
            merged = xr.merge(parts, compat="override", join="exact", combine_attrs="override")
            merged.to_netcdf(path, engine="netcdf4", format="NETCDF4")  # keeps each variable's packing


def stale_reason(target: str | Path, request: dict) -> str | None:
    """Why the month file `target` cannot be kept for `request`, from cheap checks: the file and
    its request sidecar exist, the sidecar is `request`, `check_month_header` passes (no data
    values are decoded), and the file's md5 is the one recorded when it was last checked in full
    (`checksum_file`: bit rot keeps a file's header, size and modification time, not its md5).
    None when it passes."""
    reason = _layout_reason(target, request)
    if reason is not None:
        return reason
    recorded = recorded_checksum(target)
    if recorded is None:
        return f"{checksum_file(Path(target)).name} is missing or unreadable"
    digest = file_md5(target)
    if digest != recorded:
        return (f"{target}: its content changed since it was checked (md5 {digest}, "
                f"{checksum_file(Path(target)).name} records {recorded})")
    return None


def _layout_reason(target: str | Path, request: dict) -> str | None:
    """`stale_reason` without the checksum."""
    target, sidecar = Path(target), request_file(Path(target))
    if not target.is_file():
        return "not downloaded yet"
    if not sidecar.is_file():
        return f"{sidecar.name} is missing"
    try:
        if json.loads(sidecar.read_text()) != request:
            return f"{sidecar.name} records another request"
    except json.JSONDecodeError:
        return f"{sidecar.name} is not valid JSON"
    try:
        check_month_header(target, request)
    except Era5FileError as exc:
        return str(exc)
    return None


def is_current(target: str | Path, request: dict) -> bool:
    """Whether `target` answers exactly `request` (its sidecar matches), has the md5 recorded
    when it was checked (if one is recorded), and validates in full."""
    if _layout_reason(target, request) is not None:
        return False
    recorded = recorded_checksum(target)
    if recorded is not None and file_md5(target) != recorded:
        return False
    try:
        check_month_file(target, request)
    except Era5FileError:
        return False
    return True


def download_month(request: dict, target: str | Path, client_factory: ClientFactory) -> dict:
    """Make `target` hold the month `request` asks for.

    A target that already answers the request and validates is kept (its md5 is recorded if it
    was not). Otherwise the client retrieves into a temporary sibling, which is unzipped if
    needed, validated and only then renamed to `target`, and its md5 is recorded; a failure
    leaves `target` as it was. Returns a small report.
    """
    target = Path(target)
    month = f"{request['year']}-{request['month']}"
    if is_current(target, request):
        if recorded_checksum(target) is None:
            record_checksum(target)
        return {"month": month, "status": "kept", "file": str(target)}
    with atomic_path(target) as tmp:
        client = _client(client_factory)
        client.retrieve(DATASET, request, str(tmp))
        unwrap_zip(tmp)
        info = check_month_file(tmp, request)
    write_json(request_file(target), request)
    record_checksum(target)
    return {"month": month, "status": "downloaded", "file": str(target), **info}


def remove_partial(folder: str | Path) -> list[Path]:
    """Delete what a killed process left behind: temporary downloads and sidecars
    (`.era5-land_*.tmp-*`) and unzip folders."""
    folder = Path(folder)
    prefix = month_filename("*").removesuffix(".nc")
    stale = sorted(folder.glob(f".{prefix}.tmp-*")) + sorted(folder.glob(".unzip-*"))
    for p in stale:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return stale
