"""The embedded synthetic datasets: determinism, exact depth, CDS layout."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xarray as xr

from syncvp.data import store, synthetic_era5, synthetic_video
from syncvp.data.synthetic_video import GROUND, SKY, make_scene, render_frame
from tests.conftest import tiny_dataset


def render(seed=0, split="train", index=0, **kw):
    args = dict(resolution=16, frames=6, objects=(2, 4), speed=0.12, camera_pan=0.8, supersample=1, far=12.0)
    args.update(kw)
    return synthetic_video.render_video(seed, split, index, **args)


def test_same_seed_same_video_different_seed_different():
    a, b, c = render(0), render(0), render(1)
    for m in ("rgb", "depth", "semantic"):
        np.testing.assert_array_equal(a[m], b[m])
    assert not np.array_equal(a["rgb"], c["rgb"])
    assert not np.array_equal(render(0, index=1)["rgb"], a["rgb"])


def test_shapes_and_types():
    v = render(resolution=24, frames=5, supersample=2)
    assert v["rgb"].shape == (5, 24, 24, 3) and v["rgb"].dtype == np.uint8
    assert v["depth"].shape == (5, 24, 24) and v["depth"].dtype == np.float32
    assert v["semantic"].shape == (5, 24, 24) and v["semantic"].dtype == np.uint8
    assert set(np.unique(v["semantic"])) <= {0, 1, 2, 3}


def test_ground_depth_is_exact():
    """With no objects, every ground pixel's depth equals the analytic plane intersection."""
    scene = dataclasses.replace(
        make_scene(np.random.default_rng(3), objects=(1, 1), speed=0.1, camera_pan=1.0), objects=()
    )
    size, far, frame = 20, 1e6, 4
    rgb, depth, cls = render_frame(scene, frame, size, 1, far)
    origin, rot = synthetic_video.camera_frame(scene, frame)
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    tan = np.tan(scene.fov / 2)
    u, v = np.meshgrid(coords * tan, -coords * tan)
    # camera-space ray (u, v, 1): its forward component is 1, so planar depth = ray parameter
    w_y = u * rot[1, 0] + v * rot[1, 1] + rot[1, 2]
    analytic = np.where(w_y < 0, -origin[1] / np.where(w_y < 0, w_y, -1), far)
    ground = cls == GROUND
    assert ground.sum() > size * size / 4 and (cls[~ground] == SKY).all()
    np.testing.assert_allclose(depth[ground], analytic[ground], rtol=1e-5)


def test_videos_move_enough_to_beat_copying():
    """Frames 8 apart differ clearly: copying the last context frame is a poor prediction."""
    v = render(frames=12, resolution=32)
    diffs = [np.abs(v["rgb"][t + 8].astype(int) - v["rgb"][t].astype(int)).mean() for t in range(4)]
    assert min(diffs) > 2.0
    changed = (v["semantic"][8] != v["semantic"][0]).mean()
    assert changed > 0.01


def test_split_files_byte_identical(tmp_path, repo_params):
    cfg = tiny_dataset(repo_params)
    for name in ("a", "b"):
        store.write_store(tmp_path / f"{name}.nc", synthetic_video.render_split("synthetic", cfg.source, "test"))
    assert (tmp_path / "a.nc").read_bytes() == (tmp_path / "b.nc").read_bytes()
    other = dataclasses.replace(cfg.source, seed=cfg.source.seed + 1)
    store.write_store(tmp_path / "c.nc", synthetic_video.render_split("synthetic", other, "test"))
    assert (tmp_path / "c.nc").read_bytes() != (tmp_path / "a.nc").read_bytes()


ERA = dict(grid=(12, 16), step=0.1, north=47.0, west=7.0)


@pytest.mark.parametrize("layout, time_dim", [("new", "valid_time"), ("legacy", "time")])
def test_era5_month_cds_layout(tmp_path, layout, time_dim):
    path = synthetic_era5.write_month(tmp_path / "m.nc", 0, "2020-02", layout=layout, **ERA)
    with xr.open_dataset(path) as ds:
        assert dict(ds.sizes) == {time_dim: 29 * 24, "latitude": 12, "longitude": 16}
        assert (np.diff(ds.latitude.values) < 0).all()
        assert ds.t2m.attrs["units"] == "K" and ds.sp.attrs["units"] == "Pa"
        sea = synthetic_era5.sea_mask(0, **ERA)
        assert 0.1 < sea.mean() < 0.6
        for var in ("t2m", "sp"):
            nan = np.isnan(ds[var].values)
            assert (nan == sea[None]).all(), "NaN exactly over the fixed sea mask, every hour"
        assert 230 < float(ds.t2m.min()) and float(ds.t2m.max()) < 320
        assert 7e4 < float(ds.sp.min()) and float(ds.sp.max()) < 1.06e5
        if layout == "new":
            assert {"number", "expver"} <= set(ds.coords)
    with xr.open_dataset(path, mask_and_scale=False) as raw:
        assert raw.t2m.dtype == (np.int16 if layout == "legacy" else np.float32)


def test_era5_months_are_deterministic_and_continuous(tmp_path):
    a = synthetic_era5.write_month(tmp_path / "a.nc", 5, "2021-01", layout="new", **ERA)
    b = synthetic_era5.write_month(tmp_path / "b.nc", 5, "2021-01", layout="new", **ERA)
    assert a.read_bytes() == b.read_bytes()
    _, jan, _ = synthetic_era5.month_fields(5, "2021-01", **ERA)
    _, feb, _ = synthetic_era5.month_fields(5, "2021-02", **ERA)
    step_across = np.nanmax(np.abs(feb["t2m"][0] - jan["t2m"][-1]))
    step_within = np.nanmax(np.abs(np.diff(jan["t2m"], axis=0)))
    assert step_across <= step_within * 1.01
