"""The local Prefect server (`make ui`, `make ui-stop`, `make repro`): `make ui-stop` stops only
the server this checkout started, `make ui` / `make repro` reuse only this checkout's server, and
SYNCVP_PREFECT_PORT moves the server, the flows' API URL and the UI's API URL together."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines import server

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((server.HOST, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def checkout(home: Path, port: int):
    """os.environ as in a checkout whose PREFECT_HOME is `home`, with SYNCVP_PREFECT_PORT=`port`."""
    saved = {k: os.environ.get(k) for k in ("PREFECT_HOME", "SYNCVP_PREFECT_PORT", "PREFECT_API_URL")}
    os.environ.update(PREFECT_HOME=str(home), SYNCVP_PREFECT_PORT=str(port))
    os.environ.pop("PREFECT_API_URL", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def make(target: str, tmp_path: Path, home: Path) -> subprocess.CompletedProcess:
    """`make <target>` in the repository with PREFECT_HOME=`home`, its python this interpreter."""
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shim / "python").chmod(0o755)
    env = {**os.environ, "PREFECT_HOME": str(home)}
    # -o: take the install stamp as up to date (this interpreter already has the project)
    return subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", target, f"BIN={shim}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def message_lines(stderr: str) -> list[str]:
    """stderr without make's own "make: *** ... Error N" line."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("make")]


# --------------------------------------------------------------------------------------------
# make ui-stop


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_ui_stop_leaves_a_process_that_is_not_the_server_alone(tmp_path):
    home = tmp_path / ".prefect"
    home.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        (home / "server.pid").write_text(str(other.pid))  # a stale pid file whose pid was reused
        proc = make("ui-stop", tmp_path, home)
        assert other.poll() is None, "make ui-stop killed a process that is not this checkout's Prefect server"
        assert proc.returncode != 0
        lines = message_lines(proc.stderr)
        assert len(lines) == 1 and str(other.pid) in lines[0] and "not this checkout's Prefect server" in lines[0], (
            proc.stderr
        )
        assert not (home / "server.pid").exists(), "the stale pid file is removed"
    finally:
        if other.poll() is None:
            os.killpg(other.pid, signal.SIGKILL)
        other.wait()


def test_stop_removes_the_pid_file_of_a_server_that_has_exited(tmp_path, capsys):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with checkout(tmp_path / ".prefect", 4200):
        (tmp_path / ".prefect").mkdir()
        (tmp_path / ".prefect" / "server.pid").write_text(str(gone.pid))
        assert server.main(["stop"]) == 0
    assert "stale" in capsys.readouterr().out
    assert not (tmp_path / ".prefect" / "server.pid").exists()


# --------------------------------------------------------------------------------------------
# SYNCVP_PREFECT_PORT


def test_the_server_settings_follow_the_port(tmp_path):
    with checkout(tmp_path / ".prefect", 4317):
        os.environ["PREFECT_API_URL"] = "http://127.0.0.1:4200/api"  # left in the shell from another server
        cmd, env = server.server_command("token"), server.server_env()
        assert server.api_url() == "http://127.0.0.1:4317/api"
    assert cmd[cmd.index("--port") + 1] == "4317" and cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert env["PREFECT_UI_API_URL"] == "http://127.0.0.1:4317/api", "the UI must call the API on the same port"
    assert env["PREFECT_SERVER_API_PORT"] == "4317"
    assert Path(env["PREFECT_HOME"]).resolve() == (tmp_path / ".prefect").resolve()
    assert "PREFECT_API_URL" not in env, "the server is not a client of another server"


@pytest.mark.parametrize("value", ["http", "0", "70000"])
def test_a_bad_port_is_named(tmp_path, value, capsys):
    with checkout(tmp_path / ".prefect", 4200):
        os.environ["SYNCVP_PREFECT_PORT"] = value
        assert server.main(["status"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"SYNCVP_PREFECT_PORT={value!r}" in err, err


# --------------------------------------------------------------------------------------------
# a real server on a free port (one start for the tests below; they run in file order)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """This checkout's server on a free port: (PREFECT_HOME, port, process)."""
    home, port = tmp_path_factory.mktemp("checkout") / ".prefect", free_port()
    with checkout(home, port):
        os.environ["PREFECT_API_URL"] = "http://127.0.0.1:4200/api"  # left in the shell from another server
        proc = server.start(wait_s=240)
    assert proc is not None
    yield home, port, proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def get_json(url: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_the_ui_calls_the_api_on_the_servers_port(live_server):
    _, port, _ = live_server
    assert get_json(f"http://127.0.0.1:{port}/ui-settings")["api_url"] == f"http://127.0.0.1:{port}/api"


FLOW = """
import os
from prefect import flow

@flow(name="port-probe")
def probe():
    return os.environ["PREFECT_API_URL"]

print("api", probe())
"""


@pytest.mark.slow
def test_flows_report_to_the_server_on_the_port(live_server, capfd):
    home, port, _ = live_server
    with checkout(home, port):
        assert server.run([sys.executable, "-c", FLOW]) == 0
    assert f"api http://127.0.0.1:{port}/api" in capfd.readouterr().out
    flows = get_json(f"http://127.0.0.1:{port}/api/flows/filter", {"flows": {"name": {"any_": ["port-probe"]}}})
    assert [f["name"] for f in flows] == ["port-probe"], "the flow run is recorded by the server on the port"


@pytest.mark.slow
def test_another_checkouts_server_is_not_reused(live_server, tmp_path, capsys):
    _, port, _ = live_server
    marker = tmp_path / "ran"
    with checkout(tmp_path / ".prefect", port):  # another checkout, same port
        assert server.main(["start"]) != 0
        err = capsys.readouterr().err.strip()
        assert server.run([sys.executable, "-c", f"open({str(marker)!r}, 'w')"]) != 0
    assert err.count("\n") == 0, err
    assert f"127.0.0.1:{port}" in err and "not this checkout's" in err and "SYNCVP_PREFECT_PORT=" in err, err
    assert not marker.exists(), "make repro ran its stages against another checkout's server"


@pytest.mark.slow
def test_two_stage_processes_report_to_the_server_at_once(live_server, tmp_path):
    """Server mode of tests/pipelines/test_concurrency.py: both runs and all their tasks recorded."""
    from tests.pipelines.test_concurrency import ITEMS, run_side_by_side, stage_env, tiny_params_file

    _, port, _ = live_server
    api = f"http://127.0.0.1:{port}/api"
    env = stage_env(tmp_path / ".prefect", PREFECT_API_URL=api)
    for code, out in run_side_by_side(tiny_params_file(tmp_path), env):
        assert code == 0 and "Traceback" not in out, out
    names = [f"synthesize@{item}" for item in ITEMS]
    runs = get_json(f"{api}/flow_runs/filter", {"flow_runs": {"name": {"any_": names}}})
    assert sorted((r["name"], r["state_type"]) for r in runs) == [(n, "COMPLETED") for n in sorted(names)]
    tasks = {"synthesize@synthetic": 3, "synthesize@era5_synthetic": 4}  # splits rendered, months written
    ids = {r["id"]: r["name"] for r in runs}
    for _ in range(60):  # task runs are recorded from events, a few seconds behind
        found = get_json(f"{api}/task_runs/filter", {"flow_runs": {"id": {"any_": list(ids)}}})
        counts = {
            name: sum(t["flow_run_id"] == i and t["state_type"] == "COMPLETED" for t in found)
            for i, name in ids.items()
        }
        if counts == tasks:
            break
        time.sleep(0.5)
    assert counts == tasks


@pytest.mark.slow
def test_this_checkouts_server_is_reused_then_stopped(live_server, capsys):
    home, port, proc = live_server
    with checkout(home, port):
        assert server.start() is None, "a second `make ui` reuses the running server"
        assert server.main(["stop"]) == 0
    assert "stopped" in capsys.readouterr().out
    assert proc.wait(timeout=30) is not None
    assert not server.healthy(f"http://127.0.0.1:{port}/api")
    assert not (home / "server.pid").exists()
