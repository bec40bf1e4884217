"""The `synthesize` and `prepare` flows under the Prefect test harness, and per-item caching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from syncvp.config import SPLITS
from syncvp.data import store
from tests.io.killed import kill_mid_write

pytestmark = pytest.mark.slow


def test_synthesize_then_prepare(tiny_params, prefect_harness):
    from pipelines.prepare import prepare
    from pipelines.synthesize import synthesize

    cfg, paths = tiny_params.datasets["synthetic"], tiny_params.paths
    raw = Path(synthesize("synthetic", cfg, paths))
    assert sorted(p.name for p in raw.iterdir()) == ["test.nc", "train.nc", "val.nc"]
    out = Path(prepare("synthetic", cfg, paths))
    assert {"train.nc", "val.nc", "test.nc", "summary.json", "preview.png"} <= {p.name for p in out.iterdir()}
    info = store.read_info(out / "train.nc", deep=True, require=cfg.modalities)
    assert (info.videos, info.frames, info.height, info.width) == (3, 12, 16, 16)
    assert list(info.modalities) == ["rgb", "depth"]
    assert info.modalities["depth"].attrs["encoding"] == "inverse_depth"
    with xr.open_dataset(raw / "train.nc") as r, xr.open_dataset(out / "train.nc") as p:
        near, far = cfg.source.depth_range
        z = np.clip(r["depth"].values, near, far)
        expect = np.round((1 / z - 1 / far) / (1 / near - 1 / far) * 255)
        np.testing.assert_array_equal(p["depth"].values, expect.astype(np.uint8))
        np.testing.assert_array_equal(p["rgb"].values, r["rgb"].values)
    leftovers = [p for p in out.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_prepare_failure_leaves_no_output(tiny_params, prefect_harness, monkeypatch):
    from pipelines import prepare as prepare_flow
    from pipelines.synthesize import synthesize

    cfg, paths = tiny_params.datasets["synthetic"], tiny_params.paths
    synthesize("synthetic", cfg, paths)

    def broken(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(prepare_flow.prep, "preview", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        prepare_flow.prepare("synthetic", cfg, paths)
    assert not paths.processed_dir("synthetic").exists()
    assert list(paths.processed.iterdir()) == []


def test_the_next_run_removes_what_a_killed_run_left_and_reports_final_files(tiny_params, prefect_harness, monkeypatch):
    from pipelines import prepare as prepare_flow
    from pipelines import synthesize as synthesize_flow

    published = {}  # the real table artifacts, plus a record of them
    publish = prepare_flow.publish_table

    def record(key, rows, description):
        published[key] = rows
        publish(key, rows, description)

    for module in (prepare_flow, synthesize_flow):
        monkeypatch.setattr(module, "publish_table", record)
    cfg, paths = tiny_params.datasets["synthetic"], tiny_params.paths
    left = [kill_mid_write(paths.raw_dir("synthetic")), kill_mid_write(paths.processed_dir("synthetic"))]
    others = [
        paths.raw / ".synthetic_era5.tmp-abcd1234",
        paths.raw / "synthetic_era5",
        paths.processed / ".keep",
        paths.processed / ".synthetic.backup",
    ]  # another dataset's temporary folder, the user's folders
    for p in others:
        p.mkdir()
    raw = Path(synthesize_flow.synthesize("synthetic", cfg, paths))
    assert not left[0].exists() and left[1].exists(), "synthesize removes its own leftovers only"
    out = Path(prepare_flow.prepare("synthetic", cfg, paths))
    assert not left[1].exists()
    assert all(p.is_dir() for p in others)
    assert sorted(p.name for p in paths.raw.iterdir()) == [
        ".synthetic_era5.tmp-abcd1234",
        "synthetic",
        "synthetic_era5",
    ]
    assert sorted(p.name for p in paths.processed.iterdir()) == [".keep", ".synthetic.backup", "synthetic"]
    assert sorted(p.name for p in raw.iterdir()) == ["test.nc", "train.nc", "val.nc"]
    info = store.read_info(out / "train.nc", deep=True, require=cfg.modalities)
    assert (info.videos, info.frames, info.height, info.width) == (3, 12, 16, 16)
    assert [r["file"] for r in published["synthetic-synthesize"]] == [str(raw / f"{s}.nc") for s in SPLITS]
    assert ".tmp-" not in repr(published)


def test_item_cache_skips_done_items_and_redoes_missing(tmp_path, prefect_harness):
    from prefect import flow, task

    from pipelines.caching import item_policy, run_item

    calls = []
    source = tmp_path / "in.txt"
    source.write_text("a")

    @task(cache_policy=item_policy("src"))
    def copy_upper(src: Path, dst: Path) -> str:
        calls.append(dst.name)
        dst.write_text(src.read_text().upper())
        return str(dst)

    @flow
    def many(n: int):
        return [run_item(copy_upper, tmp_path / f"out{i}.txt", source, tmp_path / f"out{i}.txt") for i in range(n)]

    many(3)
    assert calls == ["out0.txt", "out1.txt", "out2.txt"]
    many(3)
    assert len(calls) == 3, "finished items come from the cache"
    (tmp_path / "out1.txt").unlink()
    many(3)
    assert calls[3:] == ["out1.txt"], "a missing target is redone"
    source.write_text("b")
    many(1)
    assert calls[4:] == ["out0.txt"] and (tmp_path / "out0.txt").read_text() == "B", "new input content, new key"


def test_a_bad_era5_month_stops_prepare_before_any_store_and_leaves_no_output(
    tiny_params, repo_params, prefect_harness, monkeypatch
):
    """An all-NaN month in the last split built (test) stops the flow before the train store is
    written, and nothing is left that DVC or Prefect would take for a finished output."""
    from pipelines import prepare as prepare_flow
    from syncvp.data import synthetic_era5
    from syncvp.data.era5 import Era5FileError
    from tests.data.test_era5_bad_months import write_nan_month
    from tests.data.test_era5_clips import GRID, MONTHS, era5_config

    cfg, paths = era5_config(repo_params, normalization="train"), tiny_params.paths
    raw = paths.raw_dir("era5")
    for month in MONTHS:
        synthetic_era5.write_month(raw / synthetic_era5.month_filename(month), 0, month, layout="new", **GRID)
    path = write_nan_month(raw, MONTHS[-1], ("t2m", "sp"))
    written = []
    real_write = prepare_flow.store.write_store
    monkeypatch.setattr(
        prepare_flow.store, "write_store", lambda out, ds, **kw: written.append(out) or real_write(out, ds, **kw)
    )
    with pytest.raises(Era5FileError, match=rf"^{path}: 't2m', 'sp' have no finite value"):
        prepare_flow.prepare("era5", cfg, paths)
    assert written == [], "no split was built"
    assert not paths.processed_dir("era5").exists()
    assert not paths.processed.exists() or list(paths.processed.iterdir()) == []
