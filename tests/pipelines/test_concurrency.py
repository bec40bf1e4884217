"""Stages at the same time: two `dvc repro` runs on disjoint stages of one repo both succeed while
DVC's per-path lock refuses a run of a stage that is running, and two stage processes share one
Prefect database (here in ephemeral mode; server mode: tests/pipelines/test_server.py), the first
ephemeral start on a new database being taken in turn."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from syncvp.__main__ import _fanout_yaml
from syncvp.config.loader import read_yaml

REPO = Path(__file__).resolve().parents[2]
ITEMS = ("synthetic", "era5_synthetic")  # the two synthesize instances, as `make repro` runs them side by side


def tiny_params_file(folder: Path) -> Path:
    """params.yaml with every path under `folder` and both synthetic datasets shrunk to a blink."""
    data = read_yaml(REPO / "params.yaml")
    for key in ("raw", "interim", "processed", "models", "eval"):
        data["paths"][key] = str(folder / key)
    synthetic = data["datasets"]["synthetic"]
    synthetic["source"].update(resolution=16, frames=12, videos={"train": 3, "val": 1, "test": 2}, supersample=1)
    synthetic.update(resolution=[16, 16], rollout_frames=8)
    era5 = data["datasets"]["era5_synthetic"]
    era5["source"]["grid"], era5["resolution"] = [8, 8], [8, 8]
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    data["pipeline"] = yaml.safe_load(_fanout_yaml(str(path)))["pipeline"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def stage_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO),
        "HOME": str(home.parent),
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "240",
    }
    return {**env, **extra}


def run_side_by_side(params: Path, env: dict[str, str]) -> list[tuple[int, str]]:
    """`python -m stages.synthesize <item>` for both items at once: [(exit code, output)]."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "stages.synthesize", item, "--params", str(params)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for item in ITEMS
    ]
    return [(p.wait(timeout=400), p.stdout.read()) for p in procs]


def copy_database(home: Path) -> None:
    """The test harness's database (migrated, with earlier runs) as `home`'s, like a checkout's
    `.prefect/prefect.db` after its first run. (A new database costs a migration; the first start
    on one is covered by test_the_first_ephemeral_start_on_a_new_database_is_taken_in_turn.)"""
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    home.mkdir(parents=True)
    source = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value()).split(":///", 1)[1]
    with sqlite3.connect(source) as src, sqlite3.connect(home / "prefect.db") as dst:
        src.backup(dst)


@pytest.mark.slow
def test_two_stage_processes_share_an_ephemeral_database(tmp_path, prefect_harness):
    """No server: each process starts its own temporary one on the same SQLite database."""
    home = tmp_path / ".prefect"
    copy_database(home)
    with sqlite3.connect(home / "prefect.db") as db:  # the copy holds the runs of earlier tests
        before = {row[0] for row in db.execute("SELECT id FROM flow_run")}
    params = tiny_params_file(tmp_path)
    results = run_side_by_side(params, stage_env(home))
    for code, out in results:
        assert code == 0, out
        assert "Traceback" not in out, out
    for item in ITEMS:
        assert (tmp_path / "raw" / item).is_dir()
    names = [f"synthesize@{item}" for item in ITEMS]
    with sqlite3.connect(home / "prefect.db") as db:
        rows = db.execute(
            f"SELECT id, name, state_type FROM flow_run WHERE name IN ({', '.join('?' * len(names))})", names
        ).fetchall()
    runs = [(name, state) for run_id, name, state in rows if run_id not in before]
    assert sorted(runs) == [(name, "COMPLETED") for name in sorted(names)]


def test_the_first_ephemeral_start_on_a_new_database_is_taken_in_turn(tmp_path, monkeypatch):
    """Two servers migrating a new SQLite database at once: one fails its start-up with a long
    traceback (seen with two `python -m stages.synthesize` at once on a fresh checkout). The stage
    entry starts its ephemeral server holding a lock beside the database while there is none, and
    without it once there is one."""
    import fcntl

    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_API_URL, temporary_settings

    from stages._entry import _start_ephemeral_server

    db = tmp_path / "home" / "prefect.db"
    lock = db.with_name("prefect.db.start-lock")
    started = []

    def start(self, timeout=None):  # what the real start does to a new database, and whether it is locked
        with open(lock) as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = False
            except BlockingIOError:
                held = True
        started.append(held)
        db.write_bytes(b"SQLite format 3\x00")

    monkeypatch.setattr(SubprocessASGIServer, "start", start)
    with temporary_settings({PREFECT_API_URL: "", PREFECT_API_DATABASE_CONNECTION_URL: f"sqlite+aiosqlite:///{db}"}):
        _start_ephemeral_server()
        assert started == [True], "started once, holding the lock"
        _start_ephemeral_server()
        assert started == [True, False], "the database exists: started without the lock"
    db.unlink()
    with temporary_settings(
        {PREFECT_API_URL: "http://127.0.0.1:4200/api", PREFECT_API_DATABASE_CONNECTION_URL: f"sqlite+aiosqlite:///{db}"}
    ):
        _start_ephemeral_server()
    assert started == [True, False] and not db.exists(), "a server is configured: no ephemeral start"


# --------------------------------------------------------------------------------------------
# DVC: disjoint stages side by side, a stage that is running is locked

_WAIT = """\
import pathlib, sys, time
out = pathlib.Path(sys.argv[1])
out.with_suffix(".started").write_text("")
for _ in range(1200):      # until the test says so (at most 2 minutes)
    if pathlib.Path("release").exists():
        break
    time.sleep(0.1)
out.write_text("done")
"""


def dvc(root: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
def test_dvc_runs_disjoint_stages_side_by_side_and_locks_a_running_one(tmp_path):
    from dvc.repo import Repo

    root = tmp_path / "repo"
    root.mkdir()
    Repo.init(str(root), no_scm=True).close()
    (root / "wait.py").write_text(_WAIT)
    (root / "dvc.yaml").write_text(
        textwrap.dedent(f"""\
        stages:
          slow:
            cmd: {Path(sys.executable).name} wait.py slow.txt
            outs: [slow.txt]
          quick:
            cmd: {Path(sys.executable).name} -c "open('quick.txt', 'w').write('x')"
            outs: [quick.txt]
        """)
    )
    slow = dvc(root, "repro", "slow")
    try:
        for _ in range(1200):
            if (root / "slow.started").exists() or slow.poll() is not None:
                break
            time.sleep(0.1)
        assert (root / "slow.started").exists(), slow.communicate()[0]
        again = dvc(root, "repro", "slow")  # the same stage while it runs: refused, not run twice
        out = again.communicate(timeout=120)[0]
        assert again.returncode != 0 and "is busy, it is being blocked by" in out, out
        quick = dvc(root, "repro", "quick")  # a disjoint stage meanwhile: runs
        out = quick.communicate(timeout=120)[0]
        assert quick.returncode == 0, out
        assert not (root / "slow.txt").exists(), "the slow stage was still running"
    finally:
        (root / "release").write_text("")
    out = slow.communicate(timeout=120)[0]
    assert slow.returncode == 0, out
    assert (root / "slow.txt").read_text() == "done" and (root / "quick.txt").is_file()
    with Repo(str(root)) as repo:
        assert repo.status() == {}, "dvc.lock records both stages"
