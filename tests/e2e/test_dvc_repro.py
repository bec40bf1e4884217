"""`dvc repro` of the default pipeline (shrunk to CI size) in a fresh copy of the repository (the
copy of the shared run in conftest.py that holds the default datasets, next to some real-source
datasets of test_real_sources.py), then an up-to-date rerun; and bad params refused before any
work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from syncvp.config.loader import read_yaml
from tests.e2e.conftest import DEFAULT
from tests.e2e.repo import check_evaluation, copy_repo, dvc, dvc_env, shrink

pytestmark = pytest.mark.slow


@pytest.fixture
def workdir(tmp_path, prefect_harness):
    copy_repo(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(shrink(read_yaml(tmp_path / "params.yaml")), sort_keys=False))
    return tmp_path, dvc_env()


def test_repro_then_up_to_date(pipeline_run):
    from syncvp.data.store import read_info

    project, env = pipeline_run.project(DEFAULT[0]), pipeline_run.env
    root, params = project.root, project.params
    assert set(DEFAULT) <= set(params.pipeline.prepare) and set(params.pipeline.train) & set(DEFAULT)
    for name in DEFAULT:
        for split in ("train", "val", "test"):
            read_info(root / params.paths.store(name, split), deep=True, require=params.datasets[name].modalities)
    check_era5_masks(root, params)
    for unit in (u for u, ds in params.pipeline.autoencoders.items() if ds in DEFAULT):
        out = root / params.paths.model_dir(unit)
        assert {"autoencoder.pt", "metrics.json", "reconstruction.png", "dvclive", "work"} <= {
            p.name for p in out.iterdir()
        }
        assert json.loads((out / "metrics.json").read_text())["steps"] == 4
        assert json.loads((out / "dvclive" / "metrics.json").read_text())["step"] == 4  # DVCLive, under dvc repro
    for unit in (u for u, ds in params.pipeline.single.items() if ds in DEFAULT):
        out = root / params.paths.model_dir(unit)
        assert {"diffusion.pt", "metrics.json", "loss.png", "plots", "dvclive", "work"} <= {
            p.name for p in out.iterdir()
        }
    for name in (n for n in params.pipeline.joint if n in DEFAULT):
        out = root / params.paths.model_dir(name)
        assert {"joint.pt", "metrics.json", "loss.png", "plots", "dvclive", "work"} <= {p.name for p in out.iterdir()}
        assert json.loads((out / "metrics.json").read_text())["steps"] == 4
        check_evaluation(root / params.paths.eval_dir(name), name, params.datasets[name].modalities)
    shown = dvc(["metrics", "show"], root, env).stdout
    assert "copy_last" in shown and "ssim" in shown
    assert "dvclive/metrics.json" in shown  # the training stages' DVCLive summaries are DVC metrics
    assert "Data and pipelines are up to date" in project.again.stdout
    assert any(name.endswith("joint.pt") for name in project.files), "the file check sees the outputs"
    assert project.again_touched == [], "the up-to-date `dvc repro` wrote files"


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
