"""Every real source kind from raw files to metrics through `dvc repro` (the shared run of
conftest.py): encoded videos (mp4, avi) and RGB-only PNG/JPEG sequences through Depth-Anything-V2
pseudo-depth (random ViT-S weights in the official layout), a SYNTHIA tree, a Cityscapes tree
with 16-bit disparity, and ERA5-Land months fetched by the real cdsapi client from a local CDS
stand-in; then one tiny training of every stage and the evaluation of each trained dataset."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import xarray as xr

from tests.e2e.real_sources import EXPECTED, PSEUDO, TRAINED, VIDEOS
from tests.e2e.repo import check_evaluation

pytestmark = pytest.mark.slow
SPLITS = ("train", "val", "test")


def where(run, name: str):
    """(params, root) of the repository copy that holds dataset `name`."""
    project = run.project(name)
    return project.params, project.root


def open_store(run, name: str, split: str) -> xr.Dataset:
    params, root = where(run, name)
    return xr.open_dataset(root / params.paths.store(name, split), engine="netcdf4")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stores_hold_every_video_of_the_raw_files(pipeline_run, name):
    from syncvp.data.store import read_info

    params, root = where(pipeline_run, name)
    ds = params.datasets[name]
    ids = []
    for split in SPLITS:
        info = read_info(root / params.paths.store(name, split), deep=True, require=ds.modalities)
        assert (info.videos, info.frames, info.height, info.width) == (EXPECTED[name][split], 10, 16, 16), split
        assert list(info.modalities) == list(ds.modalities)
        with open_store(pipeline_run, name, split) as store:
            ids += [str(v) for v in store["video_id"].values]
            for m in ds.modalities:
                assert np.nanstd(store[m].values) > 0, f"{name} {split} {m} is constant"
    assert len(set(ids)) == len(ids)
    if name in PSEUDO:
        files = sorted(p.stem for p in (root / params.paths.interim_dir(name) / "depth").glob("*.npz"))
        assert files == sorted(ids), "one pseudo-depth file per stored video"


@pytest.mark.parametrize("name", PSEUDO)
def test_pseudo_depth_comes_from_depth_anything(pipeline_run, name):
    from syncvp.data.store import read_info

    params, root = where(pipeline_run, name)
    for split in SPLITS:
        depth = read_info(root / params.paths.store(name, split)).modalities["depth"]
        recipe = json.loads(depth.attrs["pseudo_depth"])
        assert depth.attrs["encoding"] == "pseudo_depth" and recipe["encoder"] == "vits"
        assert recipe["input_size"] == 28 and recipe["normalization"] == "per_frame"


def test_every_video_file_is_decoded(pipeline_run):
    ids = []
    for split in SPLITS:
        with open_store(pipeline_run, "clips", split) as store:
            ids += [str(v) for v in store["video_id"].values]
    assert {v.rsplit("-", 1)[0] for v in ids} == {p.rsplit("/", 1)[-1].split(".")[0] for p in VIDEOS}


@pytest.mark.parametrize("name", ["clips", "frames", "cityscapes"])
def test_colour_frames_are_stored_rgb(pipeline_run, name):
    """Decoded through OpenCV (BGR) and stored RGB: the scenes' yellow disc is yellow in the
    store, never cyan (`moving_scene` has no other strong blue)."""
    for split in SPLITS:
        with open_store(pipeline_run, name, split) as store:
            rgb = store["rgb"].values.astype(int)
        r, b = rgb[..., 0], rgb[..., 2]
        assert ((r > 190) & (b < 110)).any() and not ((b > 190) & (r < 110)).any(), split


def test_label_maps_and_16_bit_disparity_keep_their_meaning(pipeline_run):
    with open_store(pipeline_run, "synthia", "train") as store:
        assert set(np.unique(store["semantic"].values)) <= {17 * i for i in range(16)}
        rgb = store["rgb"].values  # source_trees.rgb_frame: red = 10 * frame + 5, blue 0
        assert rgb[..., 2].max() <= 2 and rgb[..., 0].max() >= 95
    with open_store(pipeline_run, "cityscapes", "train") as store:
        depth = store["depth"].values
        assert store["depth"].attrs["value_range"].tolist() == [0, 32767]
        assert 150 < depth.max() <= 255 and depth.min() > 0  # disparity 240 / z px of 2..8 m, scaled by 255 / 32767


def test_era5_months_come_from_the_cds_api(pipeline_run):
    params, _ = where(pipeline_run, "era5")
    source = params.datasets["era5"].source
    months = [f"{r['year']}-{r['month']}" for _, r in pipeline_run.cds_requests]
    assert sorted(months) == list(source.months), "one request per month"
    for _, request in pipeline_run.cds_requests:
        assert request["area"] == list(source.area) and request["time"] == ["00:00", "06:00", "12:00", "18:00"]
    with open_store(pipeline_run, "era5", "test") as store:
        valid = store["valid"].values.astype(bool)
        assert 0 < valid.mean() < 1, "land and sea"
        assert 200 < np.nanmin(store["t2m"].values) < np.nanmax(store["t2m"].values) < 330
        assert 5e4 < np.nanmin(store["sp"].values) < np.nanmax(store["sp"].values) < 1.1e5


@pytest.mark.parametrize("name", TRAINED)
def test_every_stage_trained_and_evaluated(pipeline_run, name):
    params, root = where(pipeline_run, name)
    units = [u for u, ds in params.pipeline.autoencoders.items() if ds == name]
    assert len(units) == len(params.datasets[name].modalities)
    for unit in units:
        assert json.loads((root / params.paths.model_dir(unit) / "metrics.json").read_text())["steps"] == 4
    for unit in params.pipeline.joint[name]:  # stage 1, one model per modality
        assert (root / params.paths.model_dir(unit) / "diffusion.pt").is_file()
        assert json.loads((root / params.paths.model_dir(unit) / "metrics.json").read_text())["steps"] == 4
    assert json.loads((root / params.paths.model_dir(name) / "metrics.json").read_text())["steps"] == 4
    fields = ("t2m", "sp") if name == "era5" else ()
    check_evaluation(root / params.paths.eval_dir(name), name, params.datasets[name].modalities, fields)
    metrics = json.loads((root / params.paths.eval_dir(name) / "metrics.json").read_text())[name]
    for setting in ("all", "copy_last"):
        for m, values in metrics[setting]["standard"].items():
            assert all(math.isfinite(v) for v in values.values()), (setting, m, values)
    if fields:  # L1 in K and Pa: hourly changes of a few K and hundreds of Pa, not normalised units
        copy_last = metrics["copy_last"]["standard"]
        assert 0.1 < copy_last["t2m"]["l1"] < 30 and 10 < copy_last["sp"]["l1"] < 5000


def test_a_second_repro_finds_every_copy_up_to_date(pipeline_run):
    for project in pipeline_run.projects:
        assert "Data and pipelines are up to date" in project.again.stdout, project.again.stdout
