"""`dvc repro` of the default pipeline in a fresh copy of the repository, shrunk to CI size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from syncvp.config.loader import read_yaml

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def shrink(params: dict) -> dict:
    """The default params with every dataset and model cut to a few seconds of work."""
    for ds in params["datasets"].values():
        src = ds["source"]
        if src["kind"] == "synthetic_video":
            src.update(resolution=16, frames=12, videos={"train": 4, "val": 1, "test": 2}, supersample=1)
            ds.update(resolution=[16, 16], context_frames=2, future_frames=4, rollout_frames=8)
        elif src["kind"] == "synthetic_era5":
            months = ["2020-01", "2020-02", "2020-03"]
            src.update(months=months, grid=[12, 12])
            src["processing"].update(crop=None, splits={"train": months[:1], "val": months[1:2], "test": months[2:]})
            ds.update(resolution=[12, 12])
    params["autoencoder"].update(width=16, depth=1, heads=2, head_dim=8, ff_mult=2, axis_depth=1, axis_heads=1,
                                 axis_head_dim=8, axis_mlp=16)
    params["train_autoencoder"].update(steps=4, batch_size=2, grad_accum=1, eval_every=2, eval_clips=2,
                                       checkpoint_every=2, log_every=2, num_workers=0)
    params["train_autoencoder"]["gan"].update(enabled=False)
    params["unet"].update(model_channels=8, channel_mult=[1, 2], num_heads=2, norm_groups=4, attention_resolutions=[2])
    params["joint"].update(num_heads=2)
    for stage in ("train_single", "train_joint"):
        params[stage].update(steps=4, batch_size=2, grad_accum=1, checkpoint_every=2, log_every=2, loss_curve_every=2,
                             num_workers=0)
    params["evaluate"].update(videos=2, batch_size=2, trajectories=1, conditions=["all", "each"], samples=1,
                              metrics=["ssim", "psnr", "l2", "l1", "alignment"])
    params["sampling"].update(steps=2)
    params["run"].update(threads=1)   # tiny models: one thread is faster (and robust on a busy machine)
    return params


def copy_repo(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dst, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], cwd=dst, check=True)


@pytest.fixture
def workdir(tmp_path, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    copy_repo(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(shrink(read_yaml(tmp_path / "params.yaml")), sort_keys=False))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
               PREFECT_API_URL=PREFECT_API_URL.value())
    return tmp_path, env


def dvc(args, cwd, env, check=True):
    res = subprocess.run(["dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def test_repro_then_up_to_date(workdir):
    root, env = workdir
    dvc(["repro"], root, env)
    from syncvp.config import load_params
    from syncvp.data.store import read_info

    params = load_params(root / "params.yaml")
    for name in params.pipeline.prepare:
        for split in ("train", "val", "test"):
            read_info(root / params.paths.store(name, split), deep=True, require=params.datasets[name].modalities)
    check_era5_masks(root, params)
    for unit in params.pipeline.autoencoders:
        out = root / params.paths.model_dir(unit)
        assert {"autoencoder.pt", "metrics.json", "reconstruction.png", "plots", "work"} <= {p.name for p in out.iterdir()}
        assert json.loads((out / "metrics.json").read_text())["steps"] == 4
    for unit in params.pipeline.single:
        out = root / params.paths.model_dir(unit)
        assert {"diffusion.pt", "metrics.json", "loss.png", "plots", "work"} <= {p.name for p in out.iterdir()}
    for name in params.pipeline.joint:
        out = root / params.paths.model_dir(name)
        assert {"joint.pt", "metrics.json", "loss.png", "plots", "work"} <= {p.name for p in out.iterdir()}
        assert json.loads((out / "metrics.json").read_text())["steps"] == 4
    for name in params.pipeline.joint:
        check_evaluation(root / params.paths.eval_dir(name), name, params.datasets[name].modalities)
    shown = dvc(["metrics", "show"], root, env).stdout
    assert "copy_last" in shown and "ssim" in shown
    start = time.monotonic()
    res = dvc(["repro"], root, env)
    assert "Data and pipelines are up to date" in res.stdout
    assert time.monotonic() - start < 30


def check_evaluation(out: Path, name: str, modalities) -> None:
    """metrics.json holds the model and the references for every condition; plots, samples and compare.md exist."""
    metrics = json.loads((out / "metrics.json").read_text())[name]
    assert {"all", "copy_last", "autoencoder", "ground_truth", "single-all", *modalities,
            *(f"single-{m}" for m in modalities)} <= set(metrics)
    assert "| all → " in (out / "tables" / "compare.md").read_text()
    for setting in ("all", "copy_last"):
        for m in modalities:
            assert 0 < metrics[setting]["standard"][m]["ssim"] <= 1
    assert list((out / "plots").glob("*.tsv")) and list((out / "samples").glob("*.gif"))
    assert (out / "tables" / "videos.csv").is_file()


def check_era5_masks(root: Path, params) -> None:
    """The prepared synthetic ERA5 stores are invalid exactly over the generator's sea mask."""
    import numpy as np
    import xarray as xr

    from syncvp.data.synthetic_era5 import sea_mask

    era5 = [n for n, ds in params.datasets.items() if ds.source.kind == "synthetic_era5"]
    assert era5, "the default pipeline prepares a synthetic ERA5 dataset"
    for name in era5:
        src = params.datasets[name].source
        sea = sea_mask(src.seed, grid=src.grid, step=src.step, north=src.north, west=src.west)
        for split in ("train", "val", "test"):
            with xr.open_dataset(root / params.paths.store(name, split)) as ds:
                valid = ds["valid"].values
                assert valid.shape[2:] == sea.shape and (valid == (~sea)[None, None]).all()
                for field in params.datasets[name].modalities:
                    assert (np.isnan(ds[field].values) == sea[None, None]).all()


def test_bad_params_fail_naming_the_key(workdir):
    root, env = workdir
    data = read_yaml(root / "params.yaml")
    data["datasets"]["synthetic"]["source"]["frames"] = "many"
    (root / "params.yaml").write_text(yaml.safe_dump(data))
    res = dvc(["repro"], root, env, check=False)
    assert res.returncode != 0
    assert "datasets.synthetic.source.frames: expected an integer" in res.stderr + res.stdout
    assert not (root / "data").exists()
