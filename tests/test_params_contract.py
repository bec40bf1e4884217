"""dvc.yaml and the stage entry points agree: each expanded stage tracks exactly the params its
entry point declares, runs `python -m stages.<name> <item>`, and fans out over pipeline.<key>."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from stages._entry import SectionView

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
        assert params == sorted(spec.sections(item)), f"{address}: dvc.yaml params {params} != declared {sorted(spec.sections(item))}"
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
