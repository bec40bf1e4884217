"""One `dvc repro` of everything, shared by the end-to-end tests: the default pipeline (shrunk)
together with a dataset of every real source kind, from raw files written with real encoders to
metrics, in one temporary copy of the repository. `test_dvc_repro.py` checks the default
datasets and `test_real_sources.py` the real ones.

Process start-ups dominate a CI-sized run (each stage imports torch and prefect for a few tiny
steps), so every stage runs once, and the datasets' chains, which share no stage, are split
into two `dvc repro <targets>` runs side by side: each stage process uses one thread, and CI
machines have two cores. A plain `dvc repro` afterwards must find everything up to date.
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
from tests.e2e.repo import copy_repo, dvc, dvc_env, shrink


LANES = 2   # concurrent `dvc repro` runs: each stage process is single-threaded, two keep both CI cores busy


@dataclass
class Run:
    """What the shared run left: the repository copy, its params and how each command went."""

    root: Path
    env: dict
    params: object                      # syncvp Params of the run
    inputs: dict[str, Path]             # real_sources.write_inputs
    cds_requests: list[tuple[str, dict]]
    lanes: list[list[str]]              # the targets of each concurrent `dvc repro`
    log: str                            # their output
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    again: subprocess.CompletedProcess | None = None   # the plain `dvc repro` after them
    again_seconds: float = 0.0


def lanes(params, count: int = LANES) -> list[list[str]]:
    """Every dataset's last stage (`evaluate@`, or `prepare@` when not trained), dealt into `count`
    lists of about equal stage counts. Datasets share no stage, so the lists are disjoint chains."""
    p = params.pipeline
    cost = {}
    for name, ds in params.datasets.items():
        upstream = sum(name in group for group in (p.synthesize, p.download_era5, p.pseudo_depth))
        trained = sum(d == name for d in (*p.autoencoders.values(), *p.single.values()))
        trained += 2 if name in p.joint else 0   # train_joint, evaluate
        cost[name] = 1 + upstream + trained
    out, load = [[] for _ in range(count)], [0] * count
    for name in sorted(cost, key=lambda n: -cost[n]):
        i = load.index(min(load))
        out[i].append(f"evaluate@{name}" if name in p.joint else f"prepare@{name}")
        load[i] += cost[name]
    return [lane for lane in out if lane]


def repro_lanes(root: Path, env: dict, targets: list[list[str]]) -> tuple[str, float, dict[str, float]]:
    """`dvc repro <targets>` for each list at once (DVC locks per output path; `--wait-for-lock`
    waits out the other run's brief repository lock), with the wall time of each stage from
    DVC's "Running stage" lines. A failure raises with that run's output."""
    start = time.monotonic()
    procs = [subprocess.Popen(["dvc", "--wait-for-lock", "repro", *lane], cwd=root, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for lane in targets]
    logs, marks = [[] for _ in procs], [[] for _ in procs]

    def read(i: int) -> None:
        for line in procs[i].stdout:
            logs[i].append(line)
            if line.startswith("Running stage '"):
                marks[i].append((line.split("'")[1], time.monotonic()))

    readers = [threading.Thread(target=read, args=(i,)) for i in range(len(procs))]
    for reader in readers:
        reader.start()
    codes, ends = [], []
    for proc, reader in zip(procs, readers):
        codes.append(proc.wait())
        reader.join()
        ends.append(time.monotonic())
    text = ["".join(log) for log in logs]
    for lane, code, log in zip(targets, codes, text):
        if code != 0:
            raise AssertionError(f"dvc repro {' '.join(lane)} failed (exit status {code}):\n{log[-6000:]}")
    stages = {}
    for lane_marks, end in zip(marks, ends):
        for i, (name, t) in enumerate(lane_marks):
            stages[name] = (lane_marks[i + 1][1] if i + 1 < len(lane_marks) else end) - t
    return "\n".join(text), time.monotonic() - start, stages


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory, prefect_harness) -> Run:
    from syncvp.__main__ import _fanout_yaml
    from syncvp.config import load_params

    root, raw = tmp_path_factory.mktemp("repo"), tmp_path_factory.mktemp("raw")
    copy_repo(root)
    inputs = real_sources.write_inputs(raw)
    params = real_sources.configure(shrink(read_yaml(root / "params.yaml")), inputs)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    params["pipeline"] = yaml.safe_load(_fanout_yaml(str(path)))["pipeline"]   # `python -m syncvp fanout`, pasted
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    with CDSHTTPStandIn() as cds:
        env = dvc_env(**cds.env(), CDSAPI_RC=str(raw / "no-cdsapirc"))
        loaded = load_params(path)
        targets = lanes(loaded)
        log, seconds, stages = repro_lanes(root, env, targets)
        run = Run(root=root, env=env, params=loaded, inputs=inputs, cds_requests=list(cds.requests), lanes=targets,
                  log=log, seconds=seconds, stage_seconds=stages)
        start = time.monotonic()
        run.again = dvc(["repro"], root, env)
        run.again_seconds = time.monotonic() - start
    slowest = sorted(stages.items(), key=lambda kv: -kv[1])[:5]
    print(f"shared run: {len(stages)} stages in {seconds:.0f} s over {len(targets)} lanes; up-to-date check "
          f"{run.again_seconds:.0f} s; slowest: " + ", ".join(f"{n} {t:.0f} s" for n, t in slowest))
    return run
