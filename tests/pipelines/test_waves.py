"""pipelines.waves: stage groups run side by side under DVC, with the threads shared."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pipelines import waves
from syncvp import runtime


def test_groups_keep_file_order_and_gather_foreach_instances():
    names = [
        "synthesize@synthetic",
        "synthesize@era5_synthetic",
        "prepare@synthetic",
        "train_autoencoder@a",
        "train_autoencoder@b",
        "train_joint@synthetic",
        "evaluate@synthetic",
    ]
    assert waves.groups(names) == [
        ["synthesize@synthetic", "synthesize@era5_synthetic"],
        ["prepare@synthetic"],
        ["train_autoencoder@a", "train_autoencoder@b"],
        ["train_joint@synthetic"],
        ["evaluate@synthetic"],
    ]
    assert waves.groups(["plain", "other@x"]) == [["plain"], ["other@x"]]


def test_threads_are_shared_between_concurrent_processes():
    assert waves.threads_per_process(2, 2) == 1
    assert waves.threads_per_process(8, 3) == 2
    assert waves.threads_per_process(2, 1) == 2
    assert waves.threads_per_process(1, 2) == 1
    with pytest.raises(ValueError):
        waves.threads_per_process(0, 1)


def test_total_threads_reads_run_threads(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("run:\n  threads: 3\n")
    assert waves.total_threads(p) == 3
    p.write_text("run:\n  threads: 0\n")
    assert waves.total_threads(p) == (os.cpu_count() or 1)


def test_syncvp_threads_overrides_run_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SYNCVP_THREADS", "1")
        runtime.configure_threads(2)
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("SYNCVP_THREADS", "two")
        with pytest.raises(ValueError, match="SYNCVP_THREADS='two'"):
            runtime.configure_threads(2)
        monkeypatch.setenv("SYNCVP_THREADS", "-1")
        with pytest.raises(ValueError, match="SYNCVP_THREADS"):
            runtime.configure_threads(2)
        monkeypatch.delenv("SYNCVP_THREADS")
        runtime.configure_threads(2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# A stage instance marks that it started; an instance of `use` then waits (up to 60 s) until both
# instances have started, and records whether they had and the threads it was given. Run one after
# the other, the first would wait in vain and record 0.
_STAGE_SCRIPT = """\
import os, pathlib, sys, time
out = pathlib.Path(sys.argv[1])
pathlib.Path("started-" + out.name).write_text("")
both = [pathlib.Path(f"started-out-{i}.txt") for i in "ab"] if out.name.startswith("out-") else []
deadline = time.time() + 60
while not all(p.exists() for p in both) and time.time() < deadline:
    time.sleep(0.05)
out.write_text(f"{int(all(p.exists() for p in both))} {os.environ.get('SYNCVP_THREADS', '-')}")
"""
_STAGE = "python stage.py "


def _repo(tmp_path: Path, fail: str = "") -> tuple[Path, dict]:
    root = tmp_path / "repo"
    root.mkdir()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }
    env.pop("SYNCVP_THREADS", None)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / "stage.py").write_text(_STAGE_SCRIPT)
    subprocess.run(["dvc", "init", "-q"], cwd=root, check=True, env=env)
    use_cmd = _STAGE + "out-${item}.txt" + (f" && test ${{item}} != {fail}" if fail else "")
    (root / "dvc.yaml").write_text(
        textwrap.dedent(f"""\
        stages:
          mk:
            cmd: {_STAGE}mk.txt
            outs: [mk.txt]
          use:
            foreach: [a, b]
            do:
              cmd: {use_cmd}
              deps: [mk.txt]
              outs: ["out-${{item}}.txt"]
          fin:
            cmd: cat out-a.txt out-b.txt > fin.txt
            deps: [out-a.txt, out-b.txt]
            outs: [fin.txt]
        """)
    )
    return root, env


def _waves(root: Path, env: dict) -> subprocess.CompletedProcess:
    """`python -m pipelines.waves --threads 2` in the scratch repo (the package from this checkout)."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines.waves", "--threads", "2"],
        cwd=root,
        env={**env, "PYTHONPATH": str(Path(waves.__file__).parents[1])},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_waves_run_foreach_instances_side_by_side_and_leave_dvc_up_to_date(tmp_path):
    root, env = _repo(tmp_path)
    run = _waves(root, env)
    assert run.returncode == 0, run.stdout + run.stderr
    saw_a, ta = (root / "out-a.txt").read_text().split()
    saw_b, tb = (root / "out-b.txt").read_text().split()
    assert saw_a == saw_b == "1", "the two instances did not run side by side"
    assert ta == tb == "1"  # two side by side share 2 threads
    assert (root / "mk.txt").read_text().split()[1] == "-"  # a stage alone keeps run.threads
    assert (root / "fin.txt").is_file()
    status = subprocess.run(["dvc", "status", "-q"], cwd=root, env=env)
    assert status.returncode == 0, "dvc status is not clean after the waves"


@pytest.mark.slow
def test_waves_stop_at_a_failing_instance(tmp_path):
    root, env = _repo(tmp_path, fail="b")
    run = _waves(root, env)
    assert run.returncode != 0
    assert "use@b failed" in run.stdout
    assert (root / "out-a.txt").is_file()  # the other instance of the group finished
    assert not (root / "fin.txt").exists()  # the next group never ran
