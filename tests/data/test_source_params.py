"""Params of the real data sources: strict validation naming the key, and the commented-out
examples in params.yaml stay loadable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from syncvp.config import DatasetConfig, ParamsError, params_from_dict, to_plain
from syncvp.config.loader import build, read_yaml
from syncvp.config.params import Params
from syncvp.config.pipeline import expected_pipeline

REPO = Path(__file__).resolve().parents[2]


def commented_datasets() -> dict:
    """The `datasets` entries that params.yaml ships commented out."""
    text = (REPO / "params.yaml").read_text()
    block = text[text.index("# Real data"):]
    lines = [line[1:] for line in block.splitlines() if line.startswith("#  ") or line == "#"]
    return yaml.safe_load("\n".join(lines))


def test_commented_examples_load():
    examples = commented_datasets()
    assert set(examples) == {"era5", "synthia", "cityscapes", "bair", "opendv", "agriculture"}
    for name in ("era5", "synthia", "cityscapes"):
        cfg = build(DatasetConfig, examples[name], f"datasets.{name}", "params.yaml")
        assert cfg.source.kind == examples[name]["source"]["kind"]
    for name in ("bair", "opendv", "agriculture"):  # depth from Depth-Anything-V2: needs the dataset's `pseudo_depth`
        cfg = build(DatasetConfig, examples[name], f"datasets.{name}", "params.yaml")
        assert cfg.modalities == ("rgb", "depth") and cfg.pseudo_depth is not None
        with pytest.raises(ParamsError, match=rf"datasets\.{name}\.modalities\[1\]: 'depth' is not provided"):
            build(DatasetConfig, dict(examples[name], pseudo_depth=None), f"datasets.{name}", "params.yaml")
    assert {n: e["pseudo_depth"]["encoder"] for n, e in examples.items() if e["pseudo_depth"]} == \
        {"bair": "vitb", "opendv": "vitl", "agriculture": "vitl"}  # the paper: BAIR ViT-B, OpenDV ViT-L (agri: assumed)
    era5 = build(DatasetConfig, examples["era5"], "datasets.era5", "params.yaml")
    assert era5.source.grid == (33, 33) and era5.source.video_frames == 24


def with_dataset(repo_params, name: str, entry: dict) -> Params:
    """The repo params plus one dataset, with the pipeline section it implies."""
    data = to_plain(repo_params)
    data["datasets"][name] = entry
    datasets = build(dict[str, DatasetConfig], data["datasets"], "datasets", "<test>")
    data["pipeline"] = expected_pipeline(datasets, repo_params.paths, (), repo_params.diffusion.context_encoder)
    return params_from_dict(data, "<test>")


def test_era5_dataset_fans_out_to_download_and_prepare(repo_params):
    params = with_dataset(repo_params, "era5", commented_datasets()["era5"])
    assert params.pipeline.download_era5 == ("era5",)
    assert params.pipeline.prepare["era5"] == "data/raw/era5"
    assert "era5" not in params.pipeline.synthesize


def test_user_folder_sources_depend_on_their_root(repo_params):
    params = with_dataset(repo_params, "synthia", commented_datasets()["synthia"])
    assert params.pipeline.prepare["synthia"] == "/data/SYNTHIA-SEQS"


@pytest.mark.parametrize("edit, key, words", [
    (lambda s: s.update(months=["2019-13"]), "source.months[0]", "must look like 2020-01"),
    (lambda s: s.update(hours=[3, 1]), "source.hours", "increasing order"),
    (lambda s: s.update(hours=[24]), "source.hours", "distinct hours 0..23"),
    (lambda s: s.update(area=[43.0, 6.0, 47.0, 9.0]), "source.area", "south < north"),
    (lambda s: s.update(area=[47.0, 6.0, 46.8, 9.0]), "source.area", "at least 4x4"),
    (lambda s: s.update(workers=0), "source.workers", "must be 1..8"),
    (lambda s: s["processing"]["splits"].update(val=["2019-01"]), "source.processing.splits.val", "also in 'train'"),
    (lambda s: s["processing"]["splits"].update(test=["2020-01"]), "source.processing.splits.test",
     "month 2020-01 is not in `months`"),
    (lambda s: s["processing"].update(normalization="fixed"), "source.processing.fixed_range", "must give [min, max]"),
    (lambda s: s["processing"].update(fixed_range={"t2m": [250, 300], "sp": [1, 2]}), "source.processing.fixed_range",
     "only used when normalization is 'fixed'"),
    (lambda s: s["processing"].update(crop=[30, 0, 8, 8]), "source.processing.crop", "does not fit the 33x33 grid"),
    (lambda s: s["processing"].update(stride=0), "source.processing.stride", "must be >= 1"),
])
def test_era5_params_errors_name_the_key(edit, key, words):
    entry = commented_datasets()["era5"]
    edit(entry["source"])
    with pytest.raises(ParamsError) as err:
        build(DatasetConfig, entry, "datasets.era5", "params.yaml")
    assert f"datasets.era5.{key}: " in str(err.value) and words in str(err.value), str(err.value)


@pytest.mark.parametrize("name, edit, key, words", [
    ("cityscapes", lambda s: s.update(frame_pattern="(?P<frame>"), "source.frame_pattern", "not a valid regex"),
    ("cityscapes", lambda s: s.update(frame_pattern=r"\d+"), "source.frame_pattern", "(?P<frame>...)"),
    ("cityscapes", lambda s: s.update(rgb_modality="rgbx"), "source.rgb_modality", "is not one of the modalities"),
    ("cityscapes", lambda s: s["modalities"]["depth"].update(channels=2), "source.modalities.depth.channels",
     "must be 1 or 3"),
    ("synthia", lambda s: s["splits"].update(test=["SYNTHIA-SEQS-01-DAWN"]), "source.splits.test", "also in 'train'"),
    ("synthia", lambda s: s.update(resize="nearest"), "source.resize", "must be one of"),
    ("opendv", lambda s: s["splits"].update(val=[{"file": "JS0gJxhFFJ8.mp4", "start_s": 3200, "end_s": 3550}]),
     "source.splits.val[0]", "overlaps train[0]"),
    ("opendv", lambda s: s["splits"]["test"][0].update(end_s=10), "source.splits.test[0].end_s", "must be null or > start_s"),
    ("opendv", lambda s: s.update(trim_s=[-1, 0]), "source.trim_s", ">= 0"),
    ("cityscapes", lambda s: s.update(held_out=["a"]), "source.held_out", "must be null or [] with splits: files"),
    ("cityscapes", lambda s: s.update(splits="loo"), "source.splits", "must be one of ['files', 'leave_one_out']"),
    ("agriculture", lambda s: s.update(held_out=[]), "source.held_out", "at least one sequence id"),
    ("agriculture", lambda s: s.update(val=None), "source.val", "at least one sequence id"),
    ("agriculture", lambda s: s.update(val=["plant_002", "plant_001"]), "source.val[1]",
     "'plant_001' is also in held_out (held_out and val must be disjoint)"),
    ("agriculture", lambda s: s.update(val=["plant_002", "plant_002"]), "source.val[1]", "listed twice"),
    ("agriculture", lambda s: s.update(held_out=["plant_001/"]), "source.held_out[0]", "without surrounding"),
])
def test_folder_source_errors_name_the_key(name, edit, key, words):
    entry = commented_datasets()[name]
    edit(entry["source"])
    with pytest.raises(ParamsError) as err:
        build(DatasetConfig, entry, f"datasets.{name}", "params.yaml")
    message = str(err.value)
    assert f"datasets.{name}.{key}: " in message and words in message, message


def test_shipped_era5_synthetic_is_tiny_and_not_trained(repo_params):
    ds = repo_params.datasets["era5_synthetic"]
    assert ds.source.kind == "synthetic_era5" and ds.modalities == ("t2m", "sp")
    assert "era5_synthetic" not in repo_params.pipeline.train
    assert tuple(ds.resolution) == tuple(ds.source.grid) and ds.source.processing.crop is None
    data = read_yaml(REPO / "params.yaml")
    assert data["pipeline"]["download_era5"] == []


def test_download_and_prepare_stages_of_real_sources_track_their_sections(repo_params, tmp_path):
    """dvc.yaml expanded with an era5 and a SYNTHIA dataset: each stage's params are exactly the
    sections its entry point declares, and the per-month cache is a persistent output."""
    import importlib
    import shutil
    import subprocess
    import sys

    from dvc.repo import Repo

    from stages._entry import SectionView

    params = with_dataset(with_dataset(repo_params, "era5", commented_datasets()["era5"]), "synthia",
                          commented_datasets()["synthia"])
    # `dvc init` in a subprocess: DVC's in-process logger may still hold a stream an earlier test closed
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(to_plain(params), sort_keys=False))
    seen = set()
    with Repo(str(tmp_path)) as repo:
        for stage in repo.index.stages:
            name, _, item = stage.name.partition("@")
            spec = importlib.import_module(f"stages.{name}").SPEC
            tracked = sorted(p for d in stage.deps if type(d).__name__ == "ParamsDependency" for p in d.params)
            assert tracked == sorted(spec.sections(item)), stage.name
            spec.arguments(SectionView(params, spec.sections(item)), item)
            seen.add(stage.name)
            if name == "download_era5":
                assert [(str(o.def_path), o.persist) for o in stage.outs] == [("data/raw/era5", True)]
    assert {"download_era5@era5", "prepare@era5", "prepare@synthia"} <= seen
