"""`datasets.<name>.pseudo_depth` params and the `pseudo_depth` DVC stage: validation, fan-out,
and dvc.yaml's expanded stage agreeing with the entry point's declaration."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stages._entry import SectionView
from syncvp.__main__ import _fanout_yaml
from syncvp.config import ParamsError, load_params
from syncvp.config.loader import read_yaml

REPO = Path(__file__).resolve().parents[1]
PSEUDO = {
    "encoder": "vitb",
    "input_size": 518,
    "batch_size": 8,
    "normalization": "per_frame",
    "precision": "auto",
    "task_runner": {"kind": "threads", "workers": 1, "address": None},
}


def write_params(tmp_path: Path, pseudo: dict | None = PSEUDO, modalities=("rgb", "depth"), weights=None) -> Path:
    data = read_yaml(REPO / "params.yaml")
    ds = data["datasets"]["synthetic"]
    ds["pseudo_depth"], ds["modalities"] = pseudo, list(modalities)
    data["weights"]["depth_anything_vitb"] = weights
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    data["pipeline"] = yaml.safe_load(_fanout_yaml(str(path)))["pipeline"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_pseudo_depth_fans_out_and_prepare_reads_its_output(tmp_path):
    params = load_params(write_params(tmp_path))
    cfg = params.datasets["synthetic"].pseudo_depth
    assert (cfg.encoder, cfg.input_size, cfg.weights_key) == ("vitb", 518, "depth_anything_vitb")
    assert params.pipeline.pseudo_depth == {"synthetic": "data/raw/synthetic"}
    assert params.pipeline.prepare["synthetic"] == "data/interim/synthetic"


@pytest.mark.parametrize(
    "change, key, words",
    [
        ({"input_size": 500}, "pseudo_depth.input_size", "multiple of 14"),
        ({"encoder": "vitg"}, "pseudo_depth.encoder", "must be one of"),
        ({"normalization": "global"}, "pseudo_depth.normalization", "must be one of"),
        ({"batch_size": 0}, "pseudo_depth.batch_size", "must be >= 1"),
        (
            {"task_runner": {"kind": "threads", "workers": 2, "address": "tcp://h:8786"}},
            "pseudo_depth.task_runner.address",
            "only a dask",
        ),
        (
            {"task_runner": {"kind": "dask", "workers": 2, "address": "h:8786"}},
            "pseudo_depth.task_runner.address",
            "tcp://host:port",
        ),
        (
            {"task_runner": {"kind": "dask", "workers": 0, "address": None}},
            "pseudo_depth.task_runner.workers",
            "must be >= 1",
        ),
        ({"precision": None}, "pseudo_depth.precision", "must be one of"),
    ],
)
def test_bad_pseudo_depth_params_name_the_key(tmp_path, change, key, words):
    with pytest.raises(ParamsError, match=rf"datasets\.synthetic\.{key}.*{words}"):
        load_params(write_params(tmp_path, {**PSEUDO, **change}))


def test_pseudo_depth_needs_a_depth_modality_and_provides_it(tmp_path):
    with pytest.raises(ParamsError, match=r"datasets\.synthetic\.pseudo_depth: estimates the 'depth' modality"):
        load_params(write_params(tmp_path, modalities=("rgb", "semantic")))
    missing = dict(PSEUDO)
    missing.pop("precision")
    with pytest.raises(ParamsError, match=r"pseudo_depth\.precision: is missing"):
        load_params(write_params(tmp_path, missing))


def test_dvc_stage_tracks_exactly_the_declared_sections(tmp_path):
    from dvc.repo import Repo

    from stages.pseudo_depth import SPEC

    params_path = write_params(tmp_path, weights="weights/depth_anything_v2_vitb.pth")
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "--no-scm", "-q"],
        cwd=tmp_path,
        check=True,
        env={"PATH": "/usr/bin:/bin", "DVC_NO_ANALYTICS": "1", "HOME": str(tmp_path)},
    )
    with Repo(str(tmp_path)) as repo:
        (stage,) = [s for s in repo.index.stages if s.name.startswith("pseudo_depth@")]
        params = sorted(p for d in stage.deps if type(d).__name__ == "ParamsDependency" for p in d.params)
        deps = [str(Path(d.def_path)) for d in stage.deps if type(d).__name__ != "ParamsDependency"]
        (out,) = stage.outs
        assert stage.name == "pseudo_depth@synthetic" and stage.cmd == "python -m stages.pseudo_depth synthetic"
        assert params == sorted(SPEC.sections("synthetic"))
        assert "data/raw/synthetic" in deps and "pipelines/pseudo_depth.py" in deps
        assert str(out.def_path) == "data/interim/synthetic" and out.persist
    loaded = load_params(params_path)
    args = SPEC.arguments(SectionView(loaded, SPEC.sections("synthetic")), "synthetic")
    assert args["weights"] == Path("weights/depth_anything_v2_vitb.pth") and args["device"] == "auto"
    assert args["config"].pseudo_depth.encoder == "vitb"
