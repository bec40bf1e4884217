"""The clip store: round trip, validator messages, atomic writes, encodings, chunking."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr

from syncvp.data import store


def make(videos=2, frames=5, h=6, w=7, with_field=True, valid=True):
    rng = np.random.default_rng(0)
    arrays = {
        "rgb": rng.integers(0, 256, (videos, frames, h, w, 3), dtype=np.uint8),
        "depth": rng.integers(0, 256, (videos, frames, h, w), dtype=np.uint8),
    }
    attrs = {}
    mask = None
    if with_field:
        t2m = rng.normal(280, 5, (videos, frames, h, w)).astype(np.float32)
        mask = np.ones((videos, frames, h, w), np.uint8)
        mask[:, :, :2] = 0
        t2m[:, :, :2] = np.nan
        arrays["t2m"] = t2m
        attrs["t2m"] = {"units": "K", "norm_min": 260.0, "norm_max": 300.0}
    return store.build_dataset(
        arrays,
        dataset="toy",
        split="train",
        modality_attrs=attrs,
        valid=mask if valid else None,
        video_ids=["a", "b"][:videos],
        provenance={"made_by": "test"},
    )


def test_round_trip(tmp_path):
    ds = make()
    path = tmp_path / "train.nc"
    info = store.write_store(path, ds)
    assert (info.videos, info.frames, info.height, info.width) == (2, 5, 6, 7)
    back = store.read_info(path, deep=True)
    assert list(back.modalities) == ["rgb", "depth", "t2m"]
    assert back.modalities["rgb"].channels == 3 and back.modalities["depth"].channels == 1
    assert back.has_valid and back.provenance == {"made_by": "test"}
    with xr.open_dataset(path, engine="netcdf4", mask_and_scale=False) as got:
        for name in ("rgb", "depth", "t2m", "valid"):
            np.testing.assert_array_equal(got[name].values, ds[name].values)
            assert got[name].dtype == ds[name].dtype
        assert list(got["video_id"].values) == ["a", "b"]
    reader = store.StoreReader(path, ["rgb", "t2m"])
    np.testing.assert_array_equal(reader.read("rgb", 1, 2, 3), ds["rgb"].values[1, 2:5])


def test_chunked_one_video_per_chunk(tmp_path):
    path = tmp_path / "s.nc"
    store.write_store(path, make())
    with netCDF4.Dataset(path) as nc:
        assert nc["rgb"].chunking() == [1, 5, 6, 7, 3]
        assert nc["t2m"].chunking() == [1, 5, 6, 7]


def test_same_input_same_bytes(tmp_path):
    store.write_store(tmp_path / "a.nc", make())
    store.write_store(tmp_path / "b.nc", make())
    assert (tmp_path / "a.nc").read_bytes() == (tmp_path / "b.nc").read_bytes()


def _message(ds) -> str:
    with pytest.raises(store.StoreError) as err:
        store.validate(ds, "toy.nc", deep=True)
    return str(err.value)


def test_validator_missing_modality():
    ds = make().drop_vars("depth")
    assert "missing modality 'depth'" in _message(ds)


def test_validator_frame_count_mismatch():
    ds = make()
    short = ds["depth"].values[:, :4]
    ds = ds.drop_vars("depth").assign(depth=(("video", "depth_frame", "y", "x"), short, {"kind": "image"}))
    msg = _message(ds)
    assert "frame-count mismatch" in msg and "4 frames" in msg and "has 5" in msg


def test_validator_wrong_dtype():
    ds = make()
    ds["depth"] = ds["depth"].astype(np.float32)
    assert "'depth' is float32, but kind 'image' must be uint8" in _message(ds)


def test_validator_nan_where_valid():
    ds = make()
    values = ds["t2m"].values.copy()
    values[1, 3, 4, 5] = np.nan
    ds["t2m"].values = values
    msg = _message(ds)
    assert "1 NaN values where 'valid' says" in msg and "(1, 3, 4, 5)" in msg


def test_validator_nan_without_mask():
    msg = _message(make(valid=False))
    assert "NaN values anywhere" in msg


def test_validator_field_attrs_and_version():
    ds = make()
    del ds["t2m"].attrs["norm_max"]
    assert "lacks the 'norm_max' attribute" in _message(ds)
    ds = make()
    ds.attrs["syncvp_store_version"] = 99
    assert "syncvp_store_version is 99" in _message(ds)


def test_require_names_modality(tmp_path):
    store.write_store(tmp_path / "s.nc", make())
    with pytest.raises(store.StoreError, match="has no modality 'semantic'"):
        store.read_info(tmp_path / "s.nc", require=["semantic"])
    with pytest.raises(store.StoreError, match="does not exist"):
        store.read_info(tmp_path / "none.nc")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(OSError):
        store.write_store(tmp_path / "s.nc", make())
    assert list(tmp_path.iterdir()) == []


def test_invalid_store_is_not_written(tmp_path):
    ds = make()
    ds["depth"] = ds["depth"].astype(np.float32)
    with pytest.raises(store.StoreError):
        store.write_store(tmp_path / "s.nc", ds)
    assert list(tmp_path.iterdir()) == []


def test_source_packing_is_dropped(tmp_path):
    """A variable derived from an int16-packed source keeps its values, not the packing."""
    ds = make()
    ds["t2m"].encoding = {"dtype": "int16", "scale_factor": 0.01, "add_offset": 270.0, "_FillValue": -32767}
    store.write_store(tmp_path / "s.nc", ds)
    with xr.open_dataset(tmp_path / "s.nc", mask_and_scale=False) as got:
        assert got["t2m"].dtype == np.float32
        np.testing.assert_array_equal(got["t2m"].values, ds["t2m"].values)


def test_readers_share_one_handle_and_threads_read_safely(tmp_path):
    """Two readers of one file share a handle; closing one keeps the other working, and after
    both close xarray can open the file again; concurrent threads read consistent clips."""
    import threading

    path = tmp_path / "s.nc"
    ds = make(videos=2, frames=5)
    store.write_store(path, ds)
    a, b = store.StoreReader(path, ["rgb"]), store.StoreReader(path, ["rgb"])
    np.testing.assert_array_equal(a.read("rgb", 0, 0, 5), b.read("rgb", 0, 0, 5))
    assert a._nc() is b._nc()
    a.close()
    np.testing.assert_array_equal(b.read("rgb", 1, 1, 3), ds["rgb"].values[1, 1:4])
    b.close()
    store.read_info(path, deep=True)
    errors = []

    def worker(i):
        try:
            reader = store.StoreReader(path, ["rgb", "t2m"])
            for k in range(20):
                np.testing.assert_array_equal(reader.read("rgb", (i + k) % 2, 0, 5), ds["rgb"].values[(i + k) % 2])
                store.read_info(path)
            reader.close()
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
