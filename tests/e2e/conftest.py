"""The `dvc repro` shared by the end-to-end tests: the default pipeline (shrunk) and a dataset of
every real source kind, from raw files written with real encoders to metrics. `test_dvc_repro.py`
checks the default datasets and `test_real_sources.py` the real ones.

Process start-ups dominate a CI-sized run (each stage imports torch and prefect for a few tiny
steps), so every stage runs once. The datasets, which share no stage, are dealt into `COPIES`
temporary copies of the repository, each a complete project (params, `pipeline` section from
`python -m syncvp fanout`, its own dvc.lock) reproduced by one `dvc repro`, side by side:

- each stage process uses one thread, and CI machines have two cores;
- DVC rewrites the whole dvc.lock after every stage (a round-trip YAML parse and dump: about 4 s
  of CPU for the 11,600-line lock of all 48 stages), so the cost grows with the square of the
  stages per lock. On the 2-core machine, one copy with two concurrent `dvc repro` runs took
  418 s for both e2e modules, two copies 377 s, three 346 s.

A second plain `dvc repro` in each copy must find everything up to date.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from syncvp.config.loader import read_yaml
from tests.data.cds_http_standin import CDSHTTPStandIn
from tests.e2e import real_sources
from tests.e2e.repo import REPO, copy_repo, dvc, dvc_env, shrink

COPIES = 3  # see the module docstring
DEFAULT = tuple(read_yaml(REPO / "params.yaml")["datasets"])  # the datasets params.yaml ships


@dataclass
class Project:
    """One repository copy of the run and how its `dvc repro` went."""

    root: Path
    params: object  # syncvp Params of this copy
    log: str = ""  # output of the `dvc repro` that did the work
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    again: subprocess.CompletedProcess | None = None  # the plain `dvc repro` after it
    again_seconds: float = 0.0
    again_touched: list[str] = field(default_factory=list)  # files the plain `dvc repro` wrote
    files: dict[str, int] = field(default_factory=dict)  # file_times after it


def file_times(root: Path) -> dict[str, int]:
    """Path (relative to `root`) -> modification time in ns, for every file of the copy outside the
    DVC and Prefect state folders (which a no-op `dvc repro` may still touch)."""
    skip = {".dvc", ".prefect", ".git"}
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in root.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(root).parts)
    }


@dataclass
class Run:
    """The whole run: its copies, the raw inputs and what the CDS stand-in was asked."""

    projects: list[Project]
    env: dict
    inputs: dict[str, Path]  # real_sources.write_inputs
    cds_requests: list[tuple[str, dict]]

    def project(self, dataset: str) -> Project:
        return next(p for p in self.projects if dataset in p.params.datasets)


def stage_count(params: dict, name: str) -> int:
    """Stages of one dataset's chain, from its (fanned-out) `pipeline` section."""
    p = params["pipeline"]
    own = [name in p[k] for k in ("synthesize", "download_era5", "pseudo_depth", "prepare", "joint")]
    units = [d == name for k in ("autoencoders", "single") for d in p[k].values()]
    return sum(own) + sum(units) + (name in p["joint"])  # joint counts train_joint and evaluate


def deal(params: dict, count: int = COPIES) -> list[list[str]]:
    """The datasets dealt into `count` groups of about equal stage counts, the shipped ones together
    in the first (`test_dvc_repro.py` checks that copy as the default project)."""
    groups, load = [list(DEFAULT)] + [[] for _ in range(count - 1)], [0] * count
    load[0] = sum(stage_count(params, n) for n in DEFAULT)
    for name in sorted((n for n in params["datasets"] if n not in DEFAULT), key=lambda n: -stage_count(params, n)):
        i = load.index(min(load))
        groups[i].append(name)
        load[i] += stage_count(params, name)
    return groups


def with_fanout(path: Path, params: dict) -> dict:
    """`params` written to `path` with the `pipeline` section `python -m syncvp fanout` prints."""
    from syncvp.__main__ import _fanout_yaml

    path.write_text(yaml.safe_dump(params, sort_keys=False))
    params["pipeline"] = yaml.safe_load(_fanout_yaml(str(path)))["pipeline"]
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def make_copies(base: Path, params: dict) -> list[Path]:
    """One repository copy per group of datasets, each with only its datasets in params.yaml."""
    roots = []
    for i, group in enumerate(deal(with_fanout(base / "all-params.yaml", params))):
        root = base / f"repo{i}"
        root.mkdir()
        copy_repo(root)
        part = {
            **params,
            "datasets": {n: params["datasets"][n] for n in group},
            "pipeline": {**params["pipeline"], "train": [n for n in params["pipeline"]["train"] if n in group]},
        }
        with_fanout(root / "params.yaml", part)
        roots.append(root)
    return roots


def repro_side_by_side(projects: list[Project], env: dict) -> None:
    """`dvc repro` in every copy at once; each stage's wall time from DVC's "Running stage" lines.
    A failure raises with that copy's output."""
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            ["dvc", "repro"], cwd=p.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for p in projects
    ]
    logs, marks = [[] for _ in procs], [[] for _ in procs]

    def read(i: int) -> None:
        for line in procs[i].stdout:
            logs[i].append(line)
            if line.startswith("Running stage '"):
                marks[i].append((line.split("'")[1], time.monotonic()))

    readers = [threading.Thread(target=read, args=(i,)) for i in range(len(procs))]
    for reader in readers:
        reader.start()
    for project, proc, reader, log, stage_marks in zip(projects, procs, readers, logs, marks):
        code = proc.wait()
        reader.join()
        end = time.monotonic()
        project.log, project.seconds = "".join(log), end - start
        if code != 0:
            raise AssertionError(f"dvc repro in {project.root} failed (exit status {code}):\n{project.log[-6000:]}")
        for i, (name, t) in enumerate(stage_marks):
            project.stage_seconds[name] = (stage_marks[i + 1][1] if i + 1 < len(stage_marks) else end) - t


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory, prefect_harness) -> Run:
    from syncvp.config import load_params

    base, raw = tmp_path_factory.mktemp("e2e"), tmp_path_factory.mktemp("raw")
    inputs = real_sources.write_inputs(raw)
    params = real_sources.configure(shrink(read_yaml(REPO / "params.yaml")), inputs)
    projects = [Project(root=root, params=load_params(root / "params.yaml")) for root in make_copies(base, params)]
    with CDSHTTPStandIn() as cds:
        env = dvc_env(**cds.env(), CDSAPI_RC=str(raw / "no-cdsapirc"))
        repro_side_by_side(projects, env)
        for project in projects:
            before, start = file_times(project.root), time.monotonic()
            project.again = dvc(["repro"], project.root, env)
            project.again_seconds = time.monotonic() - start
            after = file_times(project.root)
            project.again_touched = sorted(k for k in after if before.get(k) != after[k])
            project.files = after
        run = Run(projects=projects, env=env, inputs=inputs, cds_requests=list(cds.requests))
    for p in projects:
        slowest = sorted(p.stage_seconds.items(), key=lambda kv: -kv[1])[:3]
        print(
            f"{p.root.name}: {len(p.stage_seconds)} stages of {list(p.params.datasets)} in {p.seconds:.0f} s; "
            f"up-to-date check {p.again_seconds:.0f} s; slowest: " + ", ".join(f"{n} {t:.0f} s" for n, t in slowest)
        )
    return run
