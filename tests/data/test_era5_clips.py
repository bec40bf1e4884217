"""ERA5 months -> clip stores: the NaN mask is the sea, normalisation round trips to K / Pa,
the legacy int16 packing gives the metadata range and never leaks into derived values."""

from __future__ import annotations

import dataclasses

import netCDF4
import numpy as np
import pytest
import xarray as xr

from syncvp.config import MonthSplits
from syncvp.data import era5_clips, store, synthetic_era5, transforms
from syncvp.data.dataset import ClipDataset
from syncvp.data.era5 import Era5FileError, open_month

MONTHS = ("2021-01", "2021-02", "2021-03")
GRID = dict(grid=(20, 20), step=0.1, north=47.0, west=7.0)


def era5_config(repo_params, layout="new", **processing):
    ds = repo_params.datasets["era5_synthetic"]
    resolution = processing.pop("resolution", None)
    proc = dataclasses.replace(ds.source.processing, **{
        "splits": MonthSplits(train=MONTHS[:1], val=MONTHS[1:2], test=MONTHS[2:]), **processing})
    source = dataclasses.replace(ds.source, months=MONTHS, layout=layout, processing=proc, **GRID)
    size = (proc.crop[2], proc.crop[3]) if proc.crop else GRID["grid"]
    return dataclasses.replace(ds, source=source, resolution=resolution or size)


@pytest.fixture(scope="module", params=["new", "legacy"])
def raw_months(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"era5-{request.param}")
    for month in MONTHS:
        synthetic_era5.write_month(folder / synthetic_era5.month_filename(month), 0, month, layout=request.param, **GRID)
    return request.param, folder


def prepare_all(name, cfg, raw):
    norm = era5_clips.norm_constants(cfg.source.processing, cfg.modalities, raw)
    return norm, {s: era5_clips.prepare_split(name, cfg, raw, s, norm) for s in ("train", "val", "test")}


def test_mask_is_the_sea_and_values_are_the_files(repo_params, raw_months):
    layout, raw = raw_months
    cfg = era5_config(repo_params, layout, normalization="train", video_frames=24, stride=12)
    _, stores = prepare_all("e", cfg, raw)
    sea = synthetic_era5.sea_mask(0, **GRID)
    for split, ds in stores.items():
        month = cfg.source.processing.splits.as_dict()[split][0]
        steps = synthetic_era5.month_days(month).__len__() * 24
        assert ds.sizes["video"] == (steps - 24) // 12 + 1, "videos stay inside their month"
        assert (ds["valid"].values == (~sea)[None, None]).all()
        source = open_month(raw / synthetic_era5.month_filename(month))
        for name in ("t2m", "sp"):
            values = ds[name].values
            assert values.dtype == np.float32 and (np.isnan(values) == sea[None, None]).all()
            second = source[name].values[12:36].astype(np.float32)  # the video starting at hour 12
            np.testing.assert_array_equal(values[1], second)
        assert str(ds["video_id"].values[1]) == f"{month}-01T12"


def test_normalisation_round_trip_in_physical_units(repo_params, raw_months, tmp_path):
    layout, raw = raw_months
    cfg = era5_config(repo_params, layout, normalization="train")
    norm, stores = prepare_all("e", cfg, raw)
    train = open_month(raw / synthetic_era5.month_filename(MONTHS[0]))
    for name in ("t2m", "sp"):
        values = train[name].values.astype(np.float32)
        assert norm[name] == [float(np.nanmin(values)), float(np.nanmax(values)), "train"]
    for split, ds in stores.items():
        path = store.write_store(tmp_path / f"{split}.nc", ds).path
        valid = ds["valid"].values.astype(bool)
        for name in ("t2m", "sp"):
            stored = ds[name].values
            lo, hi = float(ds[name].attrs["norm_min"]), float(ds[name].attrs["norm_max"])
            model = transforms.field_to_model(stored, lo, hi, valid)
            assert (model[~valid] == -1).all(), "missing points are normalised 0 (model -1)"
            if split == "train":
                assert model[valid].min() == -1 and model[valid].max() == 1
            back = era5_clips.to_physical(model, dict(ds[name].attrs))
            np.testing.assert_allclose(back[valid], stored[valid], rtol=2 * 2.0 ** -23, atol=0)
        item = ClipDataset(path, ("t2m", "sp"), 10, seed=0, window="first")[0]
        assert (item["t2m"][0][~item["valid"][0]] == -1).all()


def test_legacy_packing_gives_the_metadata_range(repo_params, raw_months, tmp_path):
    layout, raw = raw_months
    cfg = era5_config(repo_params, layout, normalization="metadata")
    if layout == "new":
        with pytest.raises(Era5FileError, match="set processing.normalization to 'train' or 'fixed'"):
            era5_clips.norm_constants(cfg.source.processing, cfg.modalities, raw)
        return
    norm, stores = prepare_all("e", cfg, raw)
    for name in ("t2m", "sp"):
        lows, highs = [], []
        for month in MONTHS:
            with netCDF4.Dataset(raw / synthetic_era5.month_filename(month)) as nc:
                var = nc.variables[name]
                assert var.dtype == np.int16
                lows.append(var.add_offset - 32767 * var.scale_factor)
                highs.append(var.add_offset + 32767 * var.scale_factor)
        assert norm[name][:2] == pytest.approx([min(lows), max(highs)], rel=1e-12)
        for ds in stores.values():
            assert np.nanmin(ds[name].values) >= norm[name][0] and np.nanmax(ds[name].values) <= norm[name][1]


def test_derived_values_are_written_plain_not_repacked(repo_params, raw_months, tmp_path):
    """Area-resized fields (for legacy files: values between the int16 levels) survive writing
    exactly: the source's packing is never applied to derived values."""
    layout, raw = raw_months
    cfg = era5_config(repo_params, layout, normalization="fixed", fixed_range={"t2m": (250.0, 300.0), "sp": (7e4, 1.05e5)},
                      resize="area", resolution=(8, 8))
    _, stores = prepare_all("e", cfg, raw)
    path = tmp_path / "test.nc"
    store.write_store(path, stores["test"])
    with xr.open_dataset(path, mask_and_scale=False) as disk:
        for name in ("t2m", "sp"):
            assert disk[name].dtype == np.float32 and "scale_factor" not in disk[name].attrs
            np.testing.assert_array_equal(disk[name].values, stores["test"][name].values)
            assert disk[name].attrs["norm_source"] == "fixed" and disk[name].attrs["norm_min"] in (250.0, 7e4)


def test_crop_and_mask_aware_area_resize(repo_params, raw_months):
    _, raw = raw_months
    cfg = era5_config(repo_params, normalization="train", crop=(2, 2, 16, 16), resize="area", resolution=(8, 8))
    ds = era5_clips.prepare_split("e", cfg, raw, "val", era5_clips.norm_constants(cfg.source.processing, cfg.modalities, raw))
    month = open_month(raw / synthetic_era5.month_filename(MONTHS[1]))
    sea = synthetic_era5.sea_mask(0, **GRID)[2:18, 2:18]
    assert (ds["valid"].values == (~sea)[1::2, 1::2][None, None]).all(), "mask: nearest neighbour"
    t2m = month["t2m"].values[:24, 2:18, 2:18]
    blocks = t2m.reshape(24, 8, 2, 8, 2)
    finite = np.isfinite(blocks)
    count = finite.sum(axis=(2, 4))
    expect = np.where(finite, blocks, 0).sum(axis=(2, 4)) / np.maximum(count, 1)  # mean of each block's valid points
    valid = ds["valid"].values[0].astype(bool)
    np.testing.assert_allclose(ds["t2m"].values[0][valid], expect[valid], rtol=1e-6)
    assert np.isnan(ds["t2m"].values[0][~valid]).all()


def test_resize_fields_nearest_keeps_exact_values():
    rng = np.random.default_rng(0)
    field = rng.normal(280, 5, (3, 8, 8)).astype(np.float32)
    valid = rng.random((3, 8, 8)) > 0.3
    field[~valid] = np.nan
    out, mask = era5_clips.resize_fields({"t2m": field}, valid, (4, 4), "nearest")
    np.testing.assert_array_equal(mask, valid[:, 1::2, 1::2])
    np.testing.assert_array_equal(out["t2m"], np.where(mask, field[:, 1::2, 1::2], np.nan))
