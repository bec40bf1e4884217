"""The temporary Prefect server's logging (stages._server_logging): SQLAlchemy's report of a
connection reset cancelled when the server stops is dropped, everything else it logs stays."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from stages._server_logging import FILTER_NAME, ShutdownNoise, server_logging_config, with_filter

REPO = Path(__file__).resolve().parents[2]


def record(name: str, exc: BaseException | None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(name, logging.ERROR, __file__, 1, "Exception during reset or similar", (), exc_info)


def test_the_filter_drops_only_a_cancelled_pool_reset():
    keep = ShutdownNoise().filter
    assert not keep(record("sqlalchemy.pool.impl.AsyncAdaptedQueuePool", asyncio.CancelledError()))
    assert not keep(record("sqlalchemy.pool", asyncio.CancelledError()))
    assert keep(record("sqlalchemy.pool.impl.AsyncAdaptedQueuePool", ValueError("a real failure")))
    assert keep(record("sqlalchemy.pool.impl.AsyncAdaptedQueuePool", None))
    assert keep(record("sqlalchemy.engine", asyncio.CancelledError()))
    assert keep(record("prefect.server", asyncio.CancelledError()))


def test_with_filter_adds_it_to_every_handler_once_and_keeps_the_rest():
    config = {
        "version": 1,
        "filters": {"mine": {"()": "x.Y"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["mine"]}, "api": {"class": "A"}},
        "loggers": {"prefect": {"level": "${PREFECT_LOGGING_LEVEL}"}},
    }
    out = with_filter(config)
    assert out["filters"] == {"mine": {"()": "x.Y"}, FILTER_NAME: {"()": "stages._server_logging.ShutdownNoise"}}
    assert out["handlers"]["console"]["filters"] == ["mine", FILTER_NAME]
    assert out["handlers"]["api"]["filters"] == [FILTER_NAME]
    assert out["loggers"] == config["loggers"]
    assert with_filter(out) == out, "applying it twice changes nothing"
    assert config["handlers"]["api"] == {"class": "A"}, "the input is not changed"


def test_a_base_file_that_is_not_a_mapping_is_refused(tmp_path):
    base = tmp_path / "logging.yml"
    base.write_text("- just a list\n")
    try:
        server_logging_config(base, tmp_path / "out")
    except ValueError as exc:
        assert "logging.yml" in str(exc)
    else:
        raise AssertionError("a list was taken for a logging configuration")
    assert not (tmp_path / "out" / "server-logging.yml").exists()


_LOG = textwrap.dedent("""\
    import asyncio, logging
    from prefect.logging.configuration import setup_logging
    setup_logging()  # as the server's create_app does: from PREFECT_LOGGING_SETTINGS_PATH
    pool = logging.getLogger("sqlalchemy.pool.impl.AsyncAdaptedQueuePool")
    for exc in (asyncio.CancelledError(), ValueError("a real failure")):
        try:
            raise exc
        except BaseException:
            pool.exception("Exception during reset or similar (%s)", type(exc).__name__)
    logging.getLogger("somelibrary").warning("a library warning")
    logging.getLogger("prefect.server").info("server info")
    """)


def test_prefect_sets_up_the_written_file_with_the_filter(tmp_path):
    """Prefect's default logging configuration with the filter, written and then loaded by Prefect
    itself in a fresh process as the server does: the cancelled reset is gone, the rest is there."""
    from prefect.logging.configuration import DEFAULT_LOGGING_SETTINGS_PATH

    path = server_logging_config(DEFAULT_LOGGING_SETTINGS_PATH, tmp_path / "home")
    assert path == tmp_path / "home" / "server-logging.yml"
    assert [p.name for p in path.parent.iterdir()] == ["server-logging.yml"], "no temporary file left"
    written = yaml.safe_load(path.read_text())
    assert written["loggers"]["prefect"]["level"] == "${PREFECT_LOGGING_LEVEL}", "templates kept for Prefect"
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
        "PREFECT_HOME": str(tmp_path / "home"),
        "PREFECT_LOGGING_SETTINGS_PATH": str(path),
        "PREFECT_SERVER_LOGGING_LEVEL": "INFO",
        "COLUMNS": "200",
    }
    out = subprocess.run(
        [sys.executable, "-c", _LOG], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "(ValueError)" in out.stderr and "ValueError: a real failure" in out.stderr
    assert "a library warning" in out.stderr and "server info" in out.stderr
    assert "CancelledError" not in out.stderr, out.stderr


def test_the_stage_starts_its_server_with_the_filtered_logging(tmp_path, monkeypatch):
    """The settings the server subprocess is started with (Prefect passes them to it as its
    environment) name the written file; afterwards this process's setting is as it was."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import (
        PREFECT_API_DATABASE_CONNECTION_URL,
        PREFECT_API_URL,
        PREFECT_LOGGING_SETTINGS_PATH,
        get_current_settings,
        temporary_settings,
    )

    from stages._entry import _start_ephemeral_server

    seen = []

    def start(self, timeout=None):
        seen.append(get_current_settings().to_environment_variables(exclude_unset=True))

    monkeypatch.setattr(SubprocessASGIServer, "start", start)
    db = tmp_path / "home" / "prefect.db"
    with temporary_settings({PREFECT_API_URL: "", PREFECT_API_DATABASE_CONNECTION_URL: f"sqlite+aiosqlite:///{db}"}):
        before = PREFECT_LOGGING_SETTINGS_PATH.value()
        _start_ephemeral_server()
        assert PREFECT_LOGGING_SETTINGS_PATH.value() == before
    (env,) = seen
    path = Path(env["PREFECT_LOGGING_CONFIG_PATH"])  # the setting PREFECT_LOGGING_SETTINGS_PATH stands for
    assert path == db.parent / "server-logging.yml"
    assert FILTER_NAME in yaml.safe_load(path.read_text())["handlers"]["console"]["filters"]


def test_a_users_own_logging_file_is_the_base(tmp_path, monkeypatch):
    """A user's logging configuration (PREFECT_LOGGING_SETTINGS_PATH pointing at an existing file)
    is what the server gets, with the filter added."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import (
        PREFECT_API_DATABASE_CONNECTION_URL,
        PREFECT_API_URL,
        PREFECT_LOGGING_SETTINGS_PATH,
        temporary_settings,
    )

    from stages._entry import _start_ephemeral_server

    own = tmp_path / "mine.yml"
    own.write_text(
        "version: 1\nhandlers:\n  plain:\n    class: logging.StreamHandler\nroot:\n  level: INFO\n  handlers: [plain]\n"
    )
    seen = []
    monkeypatch.setattr(
        SubprocessASGIServer, "start", lambda self, timeout=None: seen.append(PREFECT_LOGGING_SETTINGS_PATH.value())
    )
    db = tmp_path / "home" / "prefect.db"
    settings = {
        PREFECT_API_URL: "",
        PREFECT_API_DATABASE_CONNECTION_URL: f"sqlite+aiosqlite:///{db}",
        PREFECT_LOGGING_SETTINGS_PATH: own,
    }
    with temporary_settings(settings):
        _start_ephemeral_server()
    written = yaml.safe_load(Path(seen[0]).read_text())
    assert written["root"] == {"level": "INFO", "handlers": ["plain"]}
    assert written["handlers"]["plain"] == {"class": "logging.StreamHandler", "filters": [FILTER_NAME]}
