"""The local Prefect server: start it (`make ui`), stop it, or run a command against one.

    python -m pipelines.server start         # detached; prints the UI URL
    python -m pipelines.server stop
    python -m pipelines.server status
    python -m pipelines.server run -- CMD    # CMD runs against a server: PREFECT_API_URL if set,
                                             # else one on 127.0.0.1:$SYNCVP_PREFECT_PORT (4200),
                                             # else a temporary one, stopped afterwards

Flows report to the server named by PREFECT_API_URL; with none they use a temporary in-process
(ephemeral) server, which is slower and not visible in the UI while it runs. The server
shares its database with ephemeral runs (both use $PREFECT_HOME), so `make ui` also shows
earlier runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipelines import env

HOST = "127.0.0.1"


def port() -> int:
    return int(os.environ.get("SYNCVP_PREFECT_PORT", "4200"))


def api_url() -> str:
    return f"http://{HOST}:{port()}/api"


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def _home() -> Path:
    home = Path(os.environ["PREFECT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    return home


def start(wait_s: float = 120.0) -> subprocess.Popen | None:
    """Start a detached server unless one answers; return the process if this call started it."""
    if healthy(api_url()):
        return None
    log = open(_home() / "server.log", "ab")
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port()),
           "--analytics-off"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (_home() / "server.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if healthy(api_url()):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(1.0)
    stop_process(proc.pid)
    raise RuntimeError(f"the Prefect server did not come up on {api_url()}; see {_home() / 'server.log'}")


def stop_process(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)


def stop() -> bool:
    pid_file = _home() / "server.pid"
    if not pid_file.exists():
        return False
    stop_process(int(pid_file.read_text()))
    pid_file.unlink(missing_ok=True)
    return True


def run(cmd: list[str]) -> int:
    """Run `cmd` with PREFECT_API_URL pointing at a live server (temporary if need be)."""
    child_env = dict(os.environ)
    started = None
    url = os.environ.get("PREFECT_API_URL")
    if url:
        if not healthy(url):
            print(f"PREFECT_API_URL={url} but no Prefect server answers there; start one with `make ui` "
                  "or unset PREFECT_API_URL.", file=sys.stderr)
            return 3
    elif healthy(api_url()):
        child_env["PREFECT_API_URL"] = api_url()
    else:
        try:
            started = start()
            child_env["PREFECT_API_URL"] = api_url()
            print(f"started a temporary Prefect server at {api_url()} (use `make ui` to keep one running)")
        except RuntimeError as exc:
            print(f"warning: {exc}; flows fall back to ephemeral mode", file=sys.stderr)
    try:
        return subprocess.call(cmd, env=child_env)
    finally:
        if started is not None:
            stop_process(started.pid)
            (_home() / "server.pid").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    env.configure()
    parser = argparse.ArgumentParser(prog="python -m pipelines.server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "status", "run"])
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.action == "run":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        return run(cmd)
    if args.action == "start":
        started = start()
        print(f"Prefect UI: http://{HOST}:{port()}  ({'started' if started else 'already running'})")
        print(f"Flows report to it when PREFECT_API_URL={api_url()} is set; `make repro` sets it for you.")
        print("Stop it with `make ui-stop`.")
        return 0
    if args.action == "stop":
        print("stopped" if stop() else "no server started by `make ui` is recorded")
        return 0
    print(f"{api_url()}: {'up' if healthy(api_url()) else 'down'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
