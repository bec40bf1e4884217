"""The shared stage runner: parse -> load and validate params -> call one flow -> exit code.

Params are validated before Prefect (or torch) is even imported, so a bad params.yaml fails in
well under a second, names the key, and leaves nothing behind. A stage that fails later (bad data,
a missing model file) prints one line, `error: <stage>@<item>: <type>: <message>`, and exits 1;
Prefect's console log keeps its lines without tracebacks, and the traceback goes to
`$PREFECT_HOME/errors/<stage>@<item>.log` (`--debug` prints tracebacks instead).

Distributed training stages (a `worker` in their spec): with `run.processes` > 1 the stage re-runs
itself under `torchrun --nproc_per_node <processes>` (`--standalone` on one node; multi-node
settings come from torchrun's PET_* environment variables, e.g. PET_NNODES, PET_NODE_RANK,
PET_RDZV_ENDPOINT, which pass through). Under torchrun, rank 0 runs the Prefect flow as usual
(logs, artifacts, exports: one flow run per stage) and the other ranks call the worker, which the
flow's module defines next to the flow: the same library training call without Prefect tasks, so
they start in seconds instead of starting their own ephemeral Prefect server and flow run each.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from syncvp.config import Params, ParamsError, load_params

EXIT_FAILED, EXIT_PARAMS, EXIT_SERVER = 1, 2, 3


@dataclass(frozen=True)
class StageSpec:
    """What a DVC stage needs.

    Attributes:
        name: the stage name in dvc.yaml (also the flow's name).
        fanout: the `pipeline` key listing this stage's items (a dataset or unit per DVC item).
        sections: item -> the dotted params keys the stage reads; dvc.yaml's `params:` for the
            stage must list exactly these (tests/test_params_contract.py).
        flow: () -> the Prefect flow. The stage imports it inside this function, so that Prefect
            (and torch) load only once the params are checked.
        arguments: (params view, item) -> the flow's keyword arguments. The view only exposes
            the declared sections, so the declaration cannot drift from what is read.
        worker: () -> the function run by the ranks > 0 of a distributed run with the flow's
            keyword arguments (no Prefect flow or tasks), imported the same way; None for stages
            that never run under torchrun. A stage with a worker must declare the `run` section
            (it reads `run.processes`).
    """

    name: str
    fanout: str
    sections: Callable[[str], tuple[str, ...]]
    flow: Callable[[], Any]
    arguments: Callable[["SectionView", str], dict[str, Any]]
    worker: Callable[[], Callable[..., Any]] | None = None


class SectionView:
    """Read access to the declared sections of `Params`, and nothing else."""

    def __init__(self, params: Params, sections: tuple[str, ...]):
        self._params, self._sections = params, sections

    def __call__(self, key: str) -> Any:
        if not any(key == s or key.startswith(s + ".") for s in self._sections):
            raise KeyError(f"the stage reads {key!r} but declares only {list(self._sections)}")
        return self._params.section(key)

    def model(self, section: str, dataset: str) -> Any:
        """The `autoencoder` or `unet` section as dataset `dataset` uses it (its `models` changes
        applied); the stage must declare both the section and `datasets.<dataset>`."""
        self(section), self(f"datasets.{dataset}")
        return getattr(self._params, f"{section}_for")(dataset)


def resolve(spec: StageSpec, params: Params, item: str) -> dict[str, Any]:
    """Check the item is one of the stage's and build the flow's arguments."""
    items = getattr(params.pipeline, spec.fanout)
    if item not in items:
        raise ParamsError(f"{spec.name}: {item!r} is not listed in pipeline.{spec.fanout} ({list(items)})")
    return spec.arguments(SectionView(params, spec.sections(item)), item)


def _launch_rank() -> int | None:
    """This process's rank when a launcher started several (WORLD_SIZE > 1), else None."""
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None


def torchrun_command(
    spec: StageSpec, item: str, params_file: str, processes: int, env: dict[str, str] | None = None
) -> list[str]:
    """The command re-running the stage under torchrun with `processes` processes on this node."""
    env = os.environ if env is None else env
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    if not any(k in env for k in ("PET_NNODES", "PET_RDZV_ENDPOINT", "PET_MASTER_ADDR")):
        cmd.append("--standalone")
    return cmd + ["-m", f"stages.{spec.name}", item, "--params", params_file]


def _check_server() -> None:
    url = os.environ.get("PREFECT_API_URL")
    if url:
        from pipelines.server import healthy

        if not healthy(url):
            print(
                f"error: PREFECT_API_URL={url} but no Prefect server answers; start one with `make ui` "
                "or unset PREFECT_API_URL to run in ephemeral mode",
                file=sys.stderr,
            )
            sys.exit(EXIT_SERVER)


def _start_ephemeral_server() -> None:
    """Ephemeral mode: start this process's temporary Prefect server (the flow's client uses this
    one, a singleton), with two things Prefect's own lazy start does not do:

    - on a new database, the start holds a lock in $PREFECT_HOME, so that stage processes started
      at once on a fresh checkout (two `dvc repro` runs, `dvc queue start -j 2`) create the
      database one after the other. Otherwise both servers migrate the new database at once, one
      fails its start-up with a long traceback on the console and Prefect starts it again. Once the
      database exists nothing is locked: starting on an up-to-date database changes nothing in it;
    - the server's logging drops SQLAlchemy's report of a database call cancelled when the server
      is stopped at the end of the stage (`stages._server_logging`), which would otherwise print an
      ERROR traceback after a stage that succeeded."""
    import fcntl

    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_API_URL

    url = str(PREFECT_API_DATABASE_CONNECTION_URL.value() or "")
    if PREFECT_API_URL.value() or not url.startswith("sqlite") or ":///" not in url:
        return  # a server, or a database that is not a local SQLite file
    # imported only here: the server's modules take seconds to import, which every stage process
    # of a `make repro` (a running server) would pay for nothing
    from prefect.server.api.server import SubprocessASGIServer

    db = Path(url.split(":///", 1)[1])
    db.parent.mkdir(parents=True, exist_ok=True)
    with _server_logging_environment(db.parent), open(db.with_name(db.name + ".start-lock"), "w") as lock:
        if not db.exists():
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes (or the process ends)
        SubprocessASGIServer().start()


@contextlib.contextmanager
def _server_logging_environment(folder: Path) -> Iterator[None]:
    """PREFECT_LOGGING_SETTINGS_PATH set, while the server subprocess starts (it takes this
    process's settings), to the logging configuration Prefect would use with the shutdown filter
    added. This process's own logging is set up already and stays as it is."""
    from prefect.logging.configuration import DEFAULT_LOGGING_SETTINGS_PATH
    from prefect.settings import PREFECT_LOGGING_SETTINGS_PATH, temporary_settings

    from stages._server_logging import server_logging_config

    own = PREFECT_LOGGING_SETTINGS_PATH.value()
    path = server_logging_config(own if own.exists() else DEFAULT_LOGGING_SETTINGS_PATH, folder)
    with temporary_settings({PREFECT_LOGGING_SETTINGS_PATH: path}):
        yield


class _WithoutTraceback(logging.Formatter):
    """A console formatter's lines without the traceback of the record (the record itself, which
    other handlers such as Prefect's API log also see, is not changed)."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text:
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return self.inner.format(record)


def _console_without_tracebacks() -> None:
    """Prefect's console log keeps its lines but drops tracebacks (they go to the error log)."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()
    for handler in logging.getLogger().handlers:
        if (
            isinstance(handler, PrefectConsoleHandler)
            and handler.formatter is not None
            and not isinstance(handler.formatter, _WithoutTraceback)
        ):
            handler.setFormatter(_WithoutTraceback(handler.formatter))


def error_log(stage: str, item: str) -> Path:
    """Where a failed stage writes its traceback: `$PREFECT_HOME/errors/<stage>@<item>.log`."""
    return Path(os.environ.get("PREFECT_HOME", ".prefect")) / "errors" / f"{stage}@{item}.log"


def _report_failure(spec: StageSpec, item: str, exc: Exception) -> int:
    """One line on stderr naming the stage and the error; the traceback goes to `error_log`."""
    path = error_log(spec.name, item)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(traceback.format_exception(exc)))
    lines = str(exc).strip().splitlines()
    print(
        f"error: {spec.name}@{item}: {type(exc).__name__}: {lines[0] if lines else '(no message)'} "
        f"(traceback in {path}; --debug prints it)",
        file=sys.stderr,
    )
    return EXIT_FAILED


def run(spec: StageSpec, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m stages.{spec.name}")
    parser.add_argument("item", help=f"one entry of pipeline.{spec.fanout}")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print tracebacks (otherwise a failure prints one line and writes its traceback to "
        "$PREFECT_HOME/errors/<stage>@<item>.log)",
    )
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        kwargs = resolve(spec, params, args.item)
        processes = SectionView(params, spec.sections(args.item))("run.processes") if spec.worker else 1
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PARAMS
    rank = _launch_rank()
    if rank is None and processes > 1:
        return subprocess.call(torchrun_command(spec, args.item, args.params, processes))
    if rank:
        if spec.worker is None:
            print(f"error: stage {spec.name} does not run distributed (WORLD_SIZE > 1)", file=sys.stderr)
            return EXIT_PARAMS
        spec.worker()(**kwargs)
        return 0
    import pipelines  # noqa: F401  (Prefect environment defaults, before prefect is imported)

    _check_server()
    _start_ephemeral_server()
    from prefect import tags

    flow = spec.flow()
    run_name = os.environ.get("DVC_STAGE") or f"{spec.name}@{args.item}"
    if os.environ.get("DVC_EXP_NAME"):
        run_name += f" [{os.environ['DVC_EXP_NAME']}]"
    if not args.debug:
        _console_without_tracebacks()
    try:
        with tags("dvc", f"stage:{spec.name}", f"item:{args.item}"):
            flow.with_options(flow_run_name=run_name)(**kwargs)
    except Exception as exc:
        if args.debug:
            raise
        return _report_failure(spec, args.item, exc)
    return 0
