"""`run.processes: 2` runs the train_autoencoder stage under torchrun (gloo): rank 0 runs the Prefect
flow and exports, rank 1 the worker; the exported weights equal a single-process library run with
the same global batch. The relaunch command and the worker dispatch without Prefect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from syncvp.__main__ import _fanout_yaml
from syncvp.config import load_params
from syncvp.config.loader import read_yaml
from syncvp.models.autoencoder import load_autoencoder
from syncvp.training import autoencoder_job, autoencoder_train
from tests.training.stores import write_tiny_stores

REPO = Path(__file__).resolve().parents[2]
UNIT = "synthetic-depth-future"


def tiny_params_file(tmp_path: Path, processes: int) -> Path:
    data = read_yaml(REPO / "params.yaml")
    data["run"].update(processes=processes, device="cpu", threads=1)
    data["paths"] = {k: str(tmp_path / k) for k in ("raw", "interim", "processed", "models", "eval")}
    data["autoencoder"].update(width=16, depth=1, heads=2, head_dim=8, axis_heads=1, axis_head_dim=8, axis_mlp=16)
    data["train_autoencoder"].update(steps=4, batch_size=4, eval_every=2, eval_clips=2, checkpoint_every=2, log_every=2)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    data["pipeline"] = yaml.safe_load(_fanout_yaml(str(path)))["pipeline"]  # paths moved: re-derive
    path.write_text(yaml.safe_dump(data))
    return path


def sections(params) -> dict:
    return dict(
        dataset=params.datasets["synthetic"],
        autoencoder=params.autoencoder,
        train=params.train_autoencoder,
        run=params.run,
        paths=params.paths,
        lpips_vgg16=None,
    )


@pytest.mark.slow
def test_two_process_stage_equals_a_single_process_run(tmp_path):
    params_file = tiny_params_file(tmp_path, processes=2)
    params = load_params(params_file)
    write_tiny_stores(params.paths, videos=4, size=32)  # an epoch divisible by the ranks: same batches
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), PYTHONPATH=str(REPO))
    env.pop("PREFECT_API_URL", None)
    res = subprocess.run(
        [sys.executable, "-m", "stages.train_autoencoder", UNIT, "--params", str(params_file)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "rank 0 of 2" in res.stdout + res.stderr
    out = params.paths.model_dir(UNIT)
    assert [p.name for p in (out / "work").iterdir()] == ["status.json"]

    single = load_params(params_file)
    single_paths = single.paths.__class__(**{**vars(single.paths), "models": tmp_path / "single"})
    kwargs = {**sections(single), "paths": single_paths}
    kwargs["run"] = single.run.__class__(**{**vars(single.run), "processes": 1})
    job = autoencoder_job.plan(UNIT, **kwargs)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        autoencoder_train.train(job)
        autoencoder_train.export(job, single_paths.model_dir(UNIT))
    finally:
        torch.set_num_threads(threads)
    two = load_autoencoder(out / "autoencoder.pt").state_dict()
    one = load_autoencoder(single_paths.model_dir(UNIT) / "autoencoder.pt").state_dict()
    for k in one:
        assert torch.allclose(two[k], one[k], atol=1e-5), (k, (two[k] - one[k]).abs().max())


def test_the_stage_relaunches_itself_under_torchrun(tmp_path, monkeypatch):
    import stages.train_autoencoder as stage
    from stages import _entry

    calls = []
    monkeypatch.setattr(_entry.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    for key in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(key, raising=False)
    params_file = tiny_params_file(tmp_path, processes=3)
    assert _entry.run(stage.SPEC, [UNIT, "--params", str(params_file)]) == 0
    assert calls == [
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "3",
            "--standalone",
            "-m",
            "stages.train_autoencoder",
            UNIT,
            "--params",
            str(params_file),
        ]
    ]
    multi = _entry.torchrun_command(stage.SPEC, UNIT, "p.yaml", 8, env={"PET_NNODES": "2"})
    assert "--standalone" not in multi and multi[4] == "8"


def test_ranks_above_zero_run_the_worker_without_prefect(tmp_path, monkeypatch):
    import stages.train_autoencoder as stage
    from stages import _entry

    seen = {}
    monkeypatch.setattr(autoencoder_train, "train", lambda job: seen.setdefault("job", job))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    params_file = tiny_params_file(tmp_path, processes=2)
    write_tiny_stores(load_params(params_file).paths, size=32)
    assert _entry.run(stage.SPEC, [UNIT, "--params", str(params_file)]) == 0
    assert seen["job"].unit == UNIT


def test_a_global_batch_that_does_not_split_is_refused_before_work(tmp_path):
    params_file = tiny_params_file(tmp_path, processes=3)
    params = load_params(params_file)
    write_tiny_stores(params.paths, size=32)
    with pytest.raises(ValueError, match="train_autoencoder.batch_size = 4 .* multiple of the 3 processes"):
        autoencoder_job.plan(UNIT, **sections(params))
