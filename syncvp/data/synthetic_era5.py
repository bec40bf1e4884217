"""Synthetic ERA5-Land-like months, laid out exactly as a CDS download.

Two smooth hourly fields over a small lat/lon box: 2 m temperature `t2m` (K) and surface
pressure `sp` (Pa), with a fixed land/sea mask (sea = NaN, as ERA5-Land is land-only):

- terrain: a few random hills; `sp = 101325 exp(-z / 8400)` plus drifting pressure systems and a
  semi-diurnal tide; `t2m` = a meridional gradient, the seasonal and diurnal cycles, a lapse rate
  of 6.5 K/km and drifting warm/cold anomalies. Anomalies move with absolute time, so
  consecutive months join smoothly.
- layout "new" (CDS since 2024): dims `valid_time, latitude, longitude`, float32 with NaN
  `_FillValue`, zlib, coords `number` and `expver`, GRIB-style attributes.
- layout "legacy" (old CDS `grib_to_netcdf`): dims `time, latitude, longitude`, `time` in
  hours since 1900-01-01, int16 packing with `scale_factor`/`add_offset` fixed by the month's
  range, fill value -32767.

Latitude runs north to south, as in CDS files.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass

import numpy as np
import xarray as xr

from syncvp.seeding import numpy_rng

VARIABLES = {
    "t2m": {"long_name": "2 metre temperature", "units": "K", "standard_name": "air_temperature",
            "GRIB_paramId": 167, "GRIB_shortName": "2t", "cds_name": "2m_temperature"},
    "sp": {"long_name": "Surface pressure", "units": "Pa", "standard_name": "surface_air_pressure",
           "GRIB_paramId": 134, "GRIB_shortName": "sp", "cds_name": "surface_pressure"},
}
_EPOCH = np.datetime64("2000-01-01T00", "h")


def month_filename(month: str) -> str:
    """File name of one month, shared by `synthesize` and `download_era5`: era5-land_2020-01.nc."""
    return f"era5-land_{month}.nc"


@dataclass(frozen=True)
class _Weather:
    lat: np.ndarray        # (nlat,) descending
    lon: np.ndarray        # (nlon,)
    elevation: np.ndarray  # (nlat, nlon) metres
    land: np.ndarray       # (nlat, nlon) bool
    systems: np.ndarray    # (k, 6): y0, x0, vy, vx (grid cells/hour), sigma (cells), amplitude (1)


def _bumps(rng: np.random.Generator, shape: tuple[int, int], count: int, scale: float) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    field = np.zeros(shape)
    for _ in range(count):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        sigma = rng.uniform(0.15, 0.35) * max(shape)
        field += rng.uniform(0.3, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
    return scale * field / max(field.max(), 1e-9)


def _weather(seed: int, grid: tuple[int, int], step: float, north: float, west: float) -> _Weather:
    rng = numpy_rng(seed, "synthetic_era5")
    lat = north - step * np.arange(grid[0])
    lon = west + step * np.arange(grid[1])
    elevation = _bumps(rng, grid, 4, 1500.0)
    coast = _bumps(rng, grid, 5, 1.0)
    land = coast + 0.3 * elevation / 1500.0 > np.quantile(coast + 0.3 * elevation / 1500.0, 0.3)
    k = 6
    systems = np.stack([
        rng.uniform(0, grid[0], k), rng.uniform(0, grid[1], k),
        rng.uniform(-0.05, 0.05, k) * grid[0] / 24, rng.uniform(0.05, 0.25, k) * grid[1] / 24,
        rng.uniform(0.2, 0.45, k) * max(grid), rng.choice([-1.0, 1.0], k) * rng.uniform(0.5, 1.0, k),
    ], axis=1)
    return _Weather(lat=lat, lon=lon, elevation=elevation, land=land, systems=systems)


def _anomalies(w: _Weather, hours: np.ndarray) -> np.ndarray:
    """Drifting Gaussian systems on a periodic domain: (time, nlat, nlon), values ~[-1, 1]."""
    ny, nx = w.land.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    out = np.zeros((len(hours), ny, nx))
    for y0, x0, vy, vx, sigma, amp in w.systems:
        cy = (y0 + vy * hours)[:, None, None]
        cx = (x0 + vx * hours)[:, None, None]
        dy = (yy - cy + ny / 2) % ny - ny / 2
        dx = (xx - cx + nx / 2) % nx - nx / 2
        out += amp * np.exp(-(dy ** 2 + dx ** 2) / (2 * sigma ** 2))
    return out


def month_fields(seed: int, month: str, *, grid: tuple[int, int], step: float, north: float,
                 west: float) -> tuple[np.ndarray, dict[str, np.ndarray], _Weather]:
    """Hourly times of the month and the two fields (float64, NaN over sea)."""
    year, mon = map(int, month.split("-"))
    days = calendar.monthrange(year, mon)[1]
    times = np.datetime64(f"{month}-01T00", "h") + np.arange(days * 24)
    hours = (times - _EPOCH).astype(float)
    w = _weather(seed, grid, step, north, west)
    hour_of_day = (hours % 24)[:, None, None]
    day_of_year = ((times - times.astype("datetime64[Y]")).astype("timedelta64[D]").astype(float))[:, None, None]
    anomalies = _anomalies(w, hours)
    lat_term = -0.6 * (w.lat - w.lat.mean())[None, :, None]
    t2m = (284.0 + lat_term - 8.0 * np.cos(2 * np.pi * (day_of_year - 15) / 365.25)
           + 4.0 * np.sin(2 * np.pi * (hour_of_day - 9) / 24) - 0.0065 * w.elevation[None] + 3.0 * anomalies)
    sp = (101325.0 * np.exp(-w.elevation / 8400.0)[None] + 1200.0 * anomalies
          + 80.0 * np.sin(2 * np.pi * hour_of_day / 12))
    sea = ~w.land[None]
    fields = {"t2m": np.where(sea, np.nan, t2m), "sp": np.where(sea, np.nan, sp)}
    return times.astype("datetime64[ns]"), fields, w


def _global_attrs(layout: str) -> dict:
    if layout == "legacy":
        return {"Conventions": "CF-1.6",
                "history": "grib_to_netcdf-2.25.1: /opt/ecmwf/mars-client/bin/grib_to_netcdf -S param -o output.nc input.grib"}
    return {"GRIB_centre": "ecmf", "GRIB_centreDescription": "European Centre for Medium-Range Weather Forecasts",
            "GRIB_subCentre": 0, "Conventions": "CF-1.7",
            "institution": "European Centre for Medium-Range Weather Forecasts",
            "history": "GRIB to CDM+CF via cfgrib-0.9.15.0/ecCodes-2.39.0 with {\"source\": \"data.grib\", \"filter_by_keys\": {}, \"encode_cf\": [\"parameter\", \"time\", \"geography\", \"vertical\"]}"}


def _pack_int16(values: np.ndarray) -> tuple[float, float]:
    """grib_to_netcdf packing: the month's range spread over codes -32766..32767 (-32767 is the
    fill value), so `add_offset ± 32767 scale_factor` brackets the month's min and max."""
    lo, hi = np.nanmin(values), np.nanmax(values)
    scale = (hi - lo) / (2 ** 16 - 3) if hi > lo else 1.0
    return float(scale), float(lo + 32766 * scale)


def month_dataset(seed: int, month: str, *, grid: tuple[int, int], step: float, north: float, west: float,
                  layout: str) -> tuple[xr.Dataset, dict]:
    """One month as CDS serves it, and the `encoding` to write it with."""
    times, fields, w = month_fields(seed, month, grid=grid, step=step, north=north, west=west)
    time_dim = "time" if layout == "legacy" else "valid_time"
    coords = {time_dim: (time_dim, times, {"long_name": "time", "standard_name": "time"}),
              "latitude": ("latitude", w.lat, {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"}),
              "longitude": ("longitude", w.lon, {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"})}
    if layout == "new":
        coords["number"] = ((), np.int64(0), {"long_name": "ensemble member numerical id", "units": "1"})
        coords["expver"] = (time_dim, np.full(len(times), "0001", dtype=object), {"long_name": "Experiment version"})
    data_vars, encoding = {}, {}
    for name, values in fields.items():
        attrs = {k: v for k, v in VARIABLES[name].items() if k != "cds_name"}
        data_vars[name] = ((time_dim, "latitude", "longitude"), values.astype(np.float32 if layout == "new" else np.float64), attrs)
        if layout == "new":
            encoding[name] = {"dtype": "float32", "zlib": True, "complevel": 1, "_FillValue": np.float32(np.nan)}
        else:
            scale, offset = _pack_int16(values)
            encoding[name] = {"dtype": "int16", "scale_factor": scale, "add_offset": offset,
                              "_FillValue": np.int16(-32767), "missing_value": np.int16(-32767)}
    if layout == "legacy":
        encoding[time_dim] = {"dtype": "int32", "units": "hours since 1900-01-01 00:00:00.0", "calendar": "gregorian"}
    else:
        encoding[time_dim] = {"dtype": "int64", "units": "seconds since 1970-01-01", "calendar": "proleptic_gregorian"}
    return xr.Dataset(data_vars, coords=coords, attrs=_global_attrs(layout)), encoding


def write_month(path, seed: int, month: str, *, grid: tuple[int, int], step: float, north: float,
                west: float, layout: str):
    """Write one month atomically to `path` (netCDF4) and return the path."""
    from syncvp.io.atomic import atomic_path
    from syncvp.io.netcdf import NETCDF_LOCK

    ds, encoding = month_dataset(seed, month, grid=grid, step=step, north=north, west=west, layout=layout)
    with atomic_path(path) as tmp:
        with NETCDF_LOCK:
            ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    return path


def sea_mask(seed: int, *, grid: tuple[int, int], step: float, north: float, west: float) -> np.ndarray:
    """The fixed sea mask (True over sea) of a synthetic source, north-to-south rows."""
    return ~_weather(seed, grid, step, north, west).land


def month_days(month: str) -> list[str]:
    """The calendar days of a month as CDS wants them ("01".."28/29/30/31")."""
    year, mon = map(int, month.split("-"))
    return [f"{d:02d}" for d in range(1, calendar.monthrange(year, mon)[1] + 1)]
