"""One process-wide lock around netCDF-C/HDF5.

The HDF5 library behind netCDF4 is not thread-safe: two threads opening or reading files at
once (Prefect runs tasks in a thread pool) can crash the process. Every netCDF open, read and
write in syncvp goes through `NETCDF_LOCK` (re-entrant, so locked helpers may call each other).
Separate processes (DataLoader workers, Dask workers) each have their own HDF5 state and need
no coordination.
"""

from __future__ import annotations

import threading
from pathlib import Path

import xarray as xr

NETCDF_LOCK = threading.RLock()


def load_dataset(path: str | Path, **kwargs) -> xr.Dataset:
    """Open a netCDF file with xarray, read it fully into memory and close it, under the lock."""
    with NETCDF_LOCK, xr.open_dataset(path, engine="netcdf4", **kwargs) as ds:
        return ds.load()
