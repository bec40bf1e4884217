"""The local Prefect server: start it (`make ui`), stop it, or run a command against one.

    python -m pipelines.server start         # detached; prints the UI URL
    python -m pipelines.server stop
    python -m pipelines.server status
    python -m pipelines.server run -- CMD    # CMD runs against a server: PREFECT_API_URL if set,
                                             # else this checkout's on 127.0.0.1:$SYNCVP_PREFECT_PORT
                                             # (4200), else a temporary one, stopped afterwards

Flows report to the server named by PREFECT_API_URL; with none they use a temporary in-process
(ephemeral) server, which is slower and not visible in the UI while it runs. The server
shares its database with ephemeral runs (both use $PREFECT_HOME), so `make ui` also shows
earlier runs.

Identity. A server on the port is this checkout's when its PREFECT_HOME (which holds its
database) is this checkout's; its `/api/admin/settings` says which it is. Another checkout's
server, or any other program, on the port is an error naming the port, never a server to reuse.
A server `start` launches carries a random token on its command line (`python -X
syncvp_prefect_server=<token> -m prefect server start ...`, an option Python ignores), recorded in
`$PREFECT_HOME/server.token` beside `server.pid`; `stop` signals the process only when its
command line carries that token, so a stale pid file whose pid was reused stops nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipelines import env

HOST = "127.0.0.1"
DEFAULT_PORT = 4200
TOKEN_OPTION = "syncvp_prefect_server"  # python -X syncvp_prefect_server=<token>


class ServerError(RuntimeError):
    """A server problem the user resolves (the message is one line saying what to do)."""


def port() -> int:
    value = os.environ.get("SYNCVP_PREFECT_PORT", str(DEFAULT_PORT))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ServerError(f"SYNCVP_PREFECT_PORT={value!r} is not a port number (1-65535)")
    return int(value)


def api_url() -> str:
    return f"http://{HOST}:{port()}/api"


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def _home() -> Path:
    home = Path(os.environ["PREFECT_HOME"]).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def _pid_file() -> Path:
    return _home() / "server.pid"


def _token_file() -> Path:
    return _home() / "server.token"


# --------------------------------------------------------------------------------------------
# which server answers on the port


def server_home(url: str, timeout: float = 10.0) -> Path | None:
    """The PREFECT_HOME of the Prefect server at `url` (its /admin/settings), None if it does not say."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/admin/settings", timeout=timeout) as resp:
            home = json.loads(resp.read()).get("home")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(home).resolve() if isinstance(home, str) else None


def _port_in_use() -> bool:
    with socket.socket() as s:
        s.settimeout(2.0)
        return s.connect_ex((HOST, port())) == 0


def _another_port() -> str:
    return f"stop it, or choose another port: SYNCVP_PREFECT_PORT={port() + 1} make ui (or make repro)"


def check_port() -> bool:
    """True if this checkout's server answers on the port, False if nothing listens there.

    Raises ServerError when another checkout's Prefect server, or another program, holds the port.
    """
    if healthy(api_url()):
        home = server_home(api_url())
        if home == _home():
            return True
        raise ServerError(
            f"{HOST}:{port()} is held by a Prefect server that is not this checkout's (its PREFECT_HOME "
            f"is {home or 'unknown'}, this checkout's is {_home()}); {_another_port()}"
        )
    if _port_in_use():
        raise ServerError(f"{HOST}:{port()} is in use by a program that is not a Prefect server; {_another_port()}")
    return False


# --------------------------------------------------------------------------------------------
# start


def server_command(token: str) -> list[str]:
    """The server's command line; `-X {TOKEN_OPTION}=<token>` marks it as the one `start` launched."""
    return [
        sys.executable,
        "-X",
        f"{TOKEN_OPTION}={token}",
        "-m",
        "prefect",
        "server",
        "start",
        "--host",
        HOST,
        "--port",
        str(port()),
        "--analytics-off",
    ]


def server_env() -> dict[str, str]:
    """The server's environment: this checkout's PREFECT_HOME (its database), its port in the
    server's settings, and the UI told to call the API on that same port (PREFECT_UI_API_URL;
    without it the UI calls PREFECT_API_URL or port 4200). The server is no client of another
    server: PREFECT_API_URL is dropped."""
    child = dict(os.environ)
    child.pop("PREFECT_API_URL", None)
    child.update(
        PREFECT_HOME=str(_home()),
        PREFECT_SERVER_API_HOST=HOST,
        PREFECT_SERVER_API_PORT=str(port()),
        PREFECT_UI_API_URL=api_url(),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    return child


def start(wait_s: float = 120.0) -> subprocess.Popen | None:
    """Start a detached server unless this checkout's answers; return the process if this call
    started it. Raises ServerError if the port is taken by anything else."""
    if check_port():
        return None
    token = secrets.token_hex(16)
    log = open(_home() / "server.log", "ab")
    proc = subprocess.Popen(
        server_command(token), env=server_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    _token_file().write_text(token)
    _pid_file().write_text(str(proc.pid))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and proc.poll() is None:
        if healthy(api_url()):
            return proc
        time.sleep(1.0)
    stop_process(proc.pid)
    _forget()
    raise RuntimeError(f"the Prefect server did not come up on {api_url()}; see {_home() / 'server.log'}")


# --------------------------------------------------------------------------------------------
# stop


def process_command(pid: int) -> list[str] | None:
    """The command line of process `pid`, None if there is no such process (or it has exited)."""
    if Path("/proc/self/cmdline").exists():
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1] or None
        except OSError:
            return None
    out = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True)
    return out.stdout.split() or None  # systems without /proc (macOS)


def is_server_process(pid: int, token: str | None) -> bool:
    """Whether process `pid` is the Prefect server `start` launched with `token`."""
    cmd = process_command(pid)
    return (
        bool(token)
        and cmd is not None
        and f"{TOKEN_OPTION}={token}" in cmd
        and "prefect" in cmd
        and cmd[cmd.index("prefect") :][:3] == ["prefect", "server", "start"]
    )


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


def _forget() -> None:
    _pid_file().unlink(missing_ok=True)
    _token_file().unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop() -> str:
    """Stop the server `start` launched; return what happened. Raises ServerError, leaving the
    process alone and removing the stale pid file, when the recorded process is not that server."""
    pid_file = _pid_file()
    if not pid_file.exists():
        return "no server started by `make ui` is recorded"
    text = pid_file.read_text().strip()
    token = _token_file().read_text().strip() if _token_file().exists() else None
    if not text.isdigit() or not _alive(int(text)):
        _forget()
        return (
            f"no server was running (process {text or '?'} named by {pid_file} has exited); removed the stale pid file"
        )
    pid = int(text)
    if not is_server_process(pid, token):
        _forget()
        raise ServerError(
            f"process {pid} named by {pid_file} is not this checkout's Prefect server (a stale pid file "
            f"whose pid was reused?): left it running and removed the pid file; if it is a server, "
            f"stop it yourself (kill {pid})"
        )
    stop_process(pid)
    _forget()
    return "stopped"


# --------------------------------------------------------------------------------------------
# run


def run(cmd: list[str]) -> int:
    """Run `cmd` with PREFECT_API_URL pointing at a live server (temporary if need be)."""
    child_env = dict(os.environ)
    started = None
    url = os.environ.get("PREFECT_API_URL")
    if url:
        if not healthy(url):
            print(
                f"PREFECT_API_URL={url} but no Prefect server answers there; start one with `make ui` "
                "or unset PREFECT_API_URL.",
                file=sys.stderr,
            )
            return 3
    else:
        try:
            if check_port():
                child_env["PREFECT_API_URL"] = api_url()
            else:
                started = start()
                child_env["PREFECT_API_URL"] = api_url()
                print(f"started a temporary Prefect server at {api_url()} (use `make ui` to keep one running)")
        except ServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        except RuntimeError as exc:
            print(f"warning: {exc}; flows fall back to ephemeral mode", file=sys.stderr)
    try:
        return subprocess.call(cmd, env=child_env)
    finally:
        if started is not None:
            stop_process(started.pid)
            _forget()


def _status() -> str:
    if not healthy(api_url()):
        return f"{api_url()}: down"
    home = server_home(api_url())
    whose = "this checkout's" if home == _home() else f"not this checkout's: its PREFECT_HOME is {home or 'unknown'}"
    return f"{api_url()}: up ({whose})"


def main(argv: list[str] | None = None) -> int:
    env.configure()
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.server", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["start", "stop", "status", "run"])
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.action == "run":
            return run(args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd)
        if args.action == "start":
            started = start()
            print(f"Prefect UI: http://{HOST}:{port()}  ({'started' if started else 'already running'})")
            print(f"Flows report to it when PREFECT_API_URL={api_url()} is set; `make repro` sets it for you.")
            print("Stop it with `make ui-stop`.")
        elif args.action == "stop":
            print(stop())
        else:
            print(_status())
    except RuntimeError as exc:  # ServerError, or a server that did not come up
        print(f"error: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
