"""dvc.yaml and the stage entry points agree: each expanded stage tracks exactly the params its
entry point declares, runs `python -m stages.<name> <item>`, and fans out over pipeline.<key>; and
its data deps and outputs are the files `syncvp.config.layout` says it reads and writes."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from stages._entry import SectionView
from syncvp.config import parse_unit
from syncvp.training import autoencoder_train
from tests.test_stage_deps import code_deps

REPO = Path(__file__).resolve().parents[1]


def dvc_stages():
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        out = []
        for stage in repo.index.stages:
            params = sorted(p for d in stage.deps if type(d).__name__ == "ParamsDependency" for p in d.params)
            out.append((stage.name, stage.cmd, params))
        return out


def test_every_stage_tracks_exactly_its_declared_sections(repo_params):
    stages = dvc_stages()
    assert stages, "dvc.yaml defines no stages"
    seen = {}
    for address, cmd, params in stages:
        name, _, item = address.partition("@")
        spec = importlib.import_module(f"stages.{name}").SPEC
        assert spec.name == name
        assert cmd == f"python -m stages.{name} {item}", cmd
        assert params == sorted(spec.sections(item)), (
            f"{address}: dvc.yaml params {params} != declared {sorted(spec.sections(item))}"
        )
        for key in spec.sections(item):
            repo_params.section(key)  # every declared section exists
        seen.setdefault(spec.fanout, set()).add(item)
    for fanout, items in seen.items():
        assert items == set(getattr(repo_params.pipeline, fanout)), fanout


def test_stage_arguments_read_only_declared_sections(repo_params):
    for address, _, _ in dvc_stages():
        name, _, item = address.partition("@")
        spec = importlib.import_module(f"stages.{name}").SPEC
        spec.arguments(SectionView(repo_params, spec.sections(item)), item)


def test_section_view_refuses_undeclared(repo_params):
    view = SectionView(repo_params, ("paths",))
    assert view("paths") is repo_params.paths
    with pytest.raises(KeyError, match="declares only"):
        view("run")


def _files(params, name: str, item: str) -> tuple[set, set]:
    """(data deps, outputs incl. metrics and plots) of one expanded stage, as the layout spells them."""
    paths, pipeline = params.paths, params.pipeline
    if name in ("synthesize", "download_era5"):
        return set(), {paths.raw_dir(item)}
    if name == "pseudo_depth":
        return {Path(pipeline.pseudo_depth[item])}, {paths.interim_dir(item)}
    if name == "prepare":
        return {Path(pipeline.prepare[item])}, {paths.clip_stores(item).root}
    dataset, modality, role = parse_unit(item) if name in ("train_autoencoder", "train_single") else (item, None, None)
    train = {paths.store(dataset, "train")}
    aes = lambda m: {paths.autoencoder(dataset, m, r).model for r in (pipeline.context_role, "future")}  # noqa: E731
    if name == "train_autoencoder":
        f = paths.autoencoder(dataset, modality, role)
        return train | {paths.store(dataset, "val")}, {
            f.model,
            f.reconstruction,
            f.work,
            f.metrics,
            f.live_metrics,
            *(f.live_plot(p) for p in autoencoder_train.CURVES),
        }
    if name == "train_single":
        f = paths.single(dataset, modality)
        return train | aes(modality), {
            f.model,
            f.loss_plot,
            f.work,
            f.metrics,
            f.live_metrics,
            f.live_plot("loss"),
            f.plot("context"),
        }
    firsts = [parse_unit(u)[1] for u in pipeline.joint[item][:2]]  # dvc.yaml names the first two units
    models = {paths.single(dataset, m).model for m in firsts}
    aes_all = set().union(*(aes(m) for m in firsts))
    if name == "train_joint":
        f = paths.joint(dataset)
        return train | aes_all | models, {
            f.model,
            f.loss_plot,
            f.work,
            f.metrics,
            f.live_metrics,
            f.live_plots,
            f.plot("context"),
        }
    assert name == "evaluate", name
    f = paths.evaluation(dataset)
    deps = {paths.joint(dataset).model, paths.store(dataset, params.evaluate.split)} | models | aes_all
    return deps, {f.tables, f.samples, f.uncertainty, f.report, f.work, f.metrics, f.skipped, f.plots}


def test_stage_files_are_the_layouts(repo_params):
    """dvc.yaml spells paths as `${paths...}` templates; each expanded stage's data deps and outputs
    must be what `syncvp.config.layout` answers for the same params, so the two cannot drift."""
    from dvc.repo import Repo

    code = code_deps()
    with Repo(str(REPO)) as repo:
        stages = repo.index.stages
        assert stages
        for stage in stages:
            name, _, item = stage.name.partition("@")
            rel = lambda o: Path(o.fs_path).relative_to(REPO)  # noqa: E731
            deps = {rel(d) for d in stage.deps if type(d).__name__ != "ParamsDependency"}
            deps -= {Path(c) for c in code[name]}
            want_deps, want_outs = _files(repo_params, name, item)
            assert deps == want_deps, f"{stage.name}: dvc.yaml deps {sorted(map(str, deps))} != layout"
            assert {rel(o) for o in stage.outs} == want_outs, f"{stage.name}: dvc.yaml outs != layout"
