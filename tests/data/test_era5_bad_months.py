"""Bad ERA5 months stop `prepare` before any store is built, with one line naming the file and
the variable or both grids: an all-NaN month, an all-NaN variable, a month on another grid.
Real netCDF files (the CDS layout, written with xarray), the real `prepare` library path."""

from __future__ import annotations

import re

import numpy as np
import pytest

from syncvp.data import prepare, synthetic_era5
from syncvp.data.era5 import Era5FileError
from tests.data.test_era5_clips import GRID, MONTHS, era5_config

TRAIN, VAL, TEST = MONTHS  # one month per split (era5_config)


@pytest.fixture
def raw(tiny_params):
    """The three months of `era5_config` on its grid, where `prepare` looks for dataset "e"."""
    folder = tiny_params.paths.raw_dir("e")
    for month in MONTHS:
        synthetic_era5.write_month(folder / synthetic_era5.month_filename(month), 0, month, layout="new", **GRID)
    return folder


def write_nan_month(folder, month: str, names: tuple[str, ...]) -> str:
    """Rewrite a month (same layout, grid and times) with the variables `names` all missing."""
    ds, encoding = synthetic_era5.month_dataset(0, month, layout="new", **GRID)
    for name in names:
        ds[name][:] = np.nan
    path = folder / synthetic_era5.month_filename(month)
    ds.to_netcdf(path, engine="netcdf4", format="NETCDF4", encoding=encoding)
    return str(path)


def constants(tiny_params, cfg) -> dict:
    """What `prepare` computes first, before building any split."""
    return prepare.dataset_constants("e", cfg, tiny_params.paths)


@pytest.mark.parametrize("month", [TRAIN, TEST])
def test_an_all_nan_month_names_the_file_and_variables(tiny_params, repo_params, raw, month):
    path = write_nan_month(raw, month, ("t2m", "sp"))
    cfg = era5_config(repo_params, normalization="train")
    with pytest.raises(Era5FileError) as err:
        constants(tiny_params, cfg)
    message = str(err.value)
    assert message.startswith(f"{path}: 't2m', 'sp' have no finite value in any of the 744 time steps")
    assert "\n" not in message


@pytest.mark.parametrize("normalization", ["train", "fixed"])
def test_an_all_nan_sp_is_reported_as_sp(tiny_params, repo_params, raw, normalization):
    path = write_nan_month(raw, TRAIN, ("sp",))
    fixed = {"t2m": (250.0, 300.0), "sp": (7e4, 1.05e5)} if normalization == "fixed" else None
    cfg = era5_config(repo_params, normalization=normalization, fixed_range=fixed)
    with pytest.raises(Era5FileError) as err:
        constants(tiny_params, cfg)
    message = str(err.value)
    assert message.startswith(f"{path}: 'sp' has no finite value in any of the 744 time steps")
    assert "t2m" not in message and "\n" not in message


def test_an_all_nan_crop_names_the_crop(tiny_params, repo_params, raw):
    ds, encoding = synthetic_era5.month_dataset(0, VAL, layout="new", **GRID)
    ds["t2m"][:, :8, :8] = np.nan  # the north-west corner, which the crop below keeps
    path = raw / synthetic_era5.month_filename(VAL)
    ds.to_netcdf(path, engine="netcdf4", format="NETCDF4", encoding=encoding)
    cfg = era5_config(repo_params, normalization="train", crop=(0, 0, 8, 8))
    with pytest.raises(Era5FileError, match=rf"^{path}: 't2m' has no finite value in any of the 672 time steps "
                                            r"within processing\.crop \[0, 0, 8, 8\]"):
        constants(tiny_params, cfg)


OTHER_GRIDS = {
    "another step": (dict(GRID, step=0.25), r"latitude spacing is 0\.25\.\.0\.25, not 0\.1"),
    "fewer points": (dict(GRID, grid=(12, 20)), r"latitude spans 45\.9\.\.47, short of 45\.1\.\.47"),
    "half a step off": (dict(GRID, north=46.95, west=7.05), "is not the grid of"),
}


@pytest.mark.parametrize("case", list(OTHER_GRIDS))
def test_a_month_on_another_grid_names_the_file_and_both_grids(tiny_params, repo_params, raw, case):
    grid, problem = OTHER_GRIDS[case]
    path = raw / synthetic_era5.month_filename(TEST)
    synthetic_era5.write_month(path, 0, TEST, layout="new", **grid)
    cfg = era5_config(repo_params, normalization="train")
    with pytest.raises(Era5FileError) as err:
        constants(tiny_params, cfg)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert re.search(problem, message), message
    lat = np.round(grid["north"] - grid["step"] * np.arange(grid["grid"][0]), 6)
    assert f"latitude {lat[0]:g}..{lat[-1]:g} by {grid['step']:g} ({grid['grid'][0]} points)" in message, "the file's grid"
    assert "latitude 47..45.1 by 0.1 (20 points), longitude 7..8.9 by 0.1 (20 points)" in message, "the expected grid"
