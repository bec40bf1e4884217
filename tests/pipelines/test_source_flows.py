"""The `prepare` flow on the new source kinds: synthetic ERA5 (synthesize -> prepare, the same
monthly files `download_era5` writes) and a user folder (image sequences)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from syncvp.config import MonthSplits
from syncvp.data import store, synthetic_era5
from tests.conftest import with_pipeline
from tests.data.sources.test_image_sequence import city_config, write_city, write_splits

pytestmark = pytest.mark.slow


def tiny_era5(params):
    ds = params.datasets["era5_synthetic"]
    months = ("2020-01", "2020-02", "2020-03")
    proc = dataclasses.replace(
        ds.source.processing, splits=MonthSplits(train=months[:1], val=months[1:2], test=months[2:])
    )
    source = dataclasses.replace(ds.source, months=months, grid=(10, 12), processing=proc)
    return dataclasses.replace(ds, source=source, resolution=(10, 12))


def test_synthetic_era5_synthesize_then_prepare(tiny_params, prefect_harness):
    from pipelines.prepare import prepare
    from pipelines.synthesize import synthesize

    cfg, paths = tiny_era5(tiny_params), tiny_params.paths
    raw = Path(synthesize("era5_synthetic", cfg, paths))
    assert sorted(p.name for p in raw.iterdir()) == [synthetic_era5.month_filename(m) for m in cfg.source.months]
    out = Path(prepare("era5_synthetic", cfg, paths))
    src = cfg.source
    sea = synthetic_era5.sea_mask(src.seed, grid=src.grid, step=src.step, north=src.north, west=src.west)
    for split, days in (("train", 31), ("val", 29), ("test", 31)):
        info = store.read_info(out / f"{split}.nc", deep=True, require=("t2m", "sp"))
        assert (info.videos, info.frames, info.height, info.width) == (days, 24, 10, 12)
        with xr.open_dataset(out / f"{split}.nc") as ds:
            assert (ds["valid"].values == (~sea)[None, None]).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train"]["modalities"]["t2m"]["units"] == "K"
    assert summary["test"]["modalities"]["sp"]["norm_source"] == "train"
    assert (out / "preview.png").is_file()


def test_prepare_a_user_folder(tiny_params, prefect_harness, tmp_path):
    from pipelines.prepare import prepare

    root = tmp_path / "cityscapes"
    write_city(root, "train", "aachen", snippets=1, frames=4)
    write_city(root, "val", "bochum", snippets=1, frames=4)
    write_city(root, "test", "berlin", snippets=1, frames=4)
    write_splits(root)
    params = with_pipeline(tiny_params, datasets={**tiny_params.datasets, "cityscapes": city_config(root)})
    assert params.pipeline.prepare["cityscapes"] == str(root)
    out = Path(prepare("cityscapes", params.datasets["cityscapes"], params.paths))
    info = store.read_info(out / "test.nc", deep=True, require=("rgb", "depth"))
    assert (info.videos, info.frames, info.height, info.width) == (1, 4, 8, 8)
    with xr.open_dataset(out / "test.nc") as ds:
        assert np.array_equal(ds["depth"].values[0, :, 0, 0], [5, 15, 25, 35])
    missing = dataclasses.replace(params.datasets["cityscapes"].source, root=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="point the dataset's source.root at your data"):
        prepare("cityscapes", dataclasses.replace(params.datasets["cityscapes"], source=missing), params.paths)
