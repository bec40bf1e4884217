"""Stand-in cdsapi clients: they answer `retrieve(name, request, target)` with CDS-shaped files
made by the synthetic ERA5 generator (no network), and can fail, truncate or zip on demand."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from syncvp.data import synthetic_era5
from syncvp.data.era5 import NETCDF_LOCK


@dataclass
class StandInCDS:
    """A client factory (call it to get the client) that records every request.

    Attributes:
        layout: "new" or "legacy" CDS files.
        wrap: None, "zip" (one netCDF member) or "zip2" (one member per variable).
        transient: month -> number of first calls that raise ConnectionError.
        broken: months that always raise ConnectionError.
        truncate: cut every written file to half its size.
        constructor_error: raise this from the factory (like cdsapi without credentials).
    """

    seed: int = 0
    layout: str = "new"
    wrap: str | None = None
    transient: dict[str, int] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    truncate: bool = False
    constructor_error: Exception | None = None
    calls: list[tuple[str, dict]] = field(default_factory=list)
    clients: int = 0

    def __call__(self):
        self.clients += 1
        if self.constructor_error is not None:
            raise self.constructor_error
        return self

    def months(self) -> list[str]:
        return [f"{r['year']}-{r['month']}" for _, r in self.calls]

    def retrieve(self, name: str, request: dict, target: str) -> None:
        self.calls.append((name, request))
        month = f"{request['year']}-{request['month']}"
        attempts = sum(m == month for m in self.months())
        if month in self.broken or attempts <= self.transient.get(month, 0):
            raise ConnectionError(f"stand-in CDS: {month} failed (attempt {attempts})")
        with NETCDF_LOCK:  # netCDF writes must not overlap the flow's validation in another thread
            write_answer(Path(target), request, seed=self.seed, layout=self.layout, wrap=self.wrap)
        if self.truncate:
            data = Path(target).read_bytes()
            Path(target).write_bytes(data[: len(data) // 2])


def write_answer(target: Path, request: dict, *, seed: int, layout: str, wrap: str | None) -> None:
    """The file CDS would send for `request` (area, grid, hours, variables honoured)."""
    north, west, south, east = request["area"]
    step = request["grid"][1]
    grid = (round((north - south) / step) + 1, round((east - west) / step) + 1)
    month = f"{request['year']}-{request['month']}"
    ds, encoding = synthetic_era5.month_dataset(seed, month, grid=grid, step=step, north=north, west=west, layout=layout)
    time_dim = "time" if layout == "legacy" else "valid_time"
    hours = [int(t[:2]) for t in request["time"]]
    ds = ds.isel({time_dim: np.isin(ds[time_dim].dt.hour.values, hours)})
    names = [synthetic_era5_short(v) for v in request["variable"]]
    ds = ds[names]
    encoding = {k: v for k, v in encoding.items() if k in names or k == time_dim}
    if wrap is None:
        ds.to_netcdf(target, engine="netcdf4", format="NETCDF4", encoding=encoding)
        return
    parts = [names] if wrap == "zip" else [[n] for n in names]
    with zipfile.ZipFile(target, "w") as zf:
        for i, part in enumerate(parts):
            member = target.with_name(f"{target.name}.part{i}.nc")
            ds[part].to_netcdf(member, engine="netcdf4", format="NETCDF4",
                               encoding={k: v for k, v in encoding.items() if k in part or k == time_dim})
            zf.write(member, f"data_stream-oper_stepType-instant_{i}.nc")
            member.unlink()


def synthetic_era5_short(cds_name: str) -> str:
    return next(k for k, v in synthetic_era5.VARIABLES.items() if v["cds_name"] == cds_name)
