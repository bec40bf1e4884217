"""Logging for the temporary Prefect server a stage process starts in ephemeral mode.

When a stage ends, Prefect stops its temporary server (a uvicorn subprocess) with SIGTERM. A
database call in flight at that moment (the server's own background services write to SQLite,
and with two stage processes on one database a write can be waiting for the other's lock) is
cancelled, and SQLAlchemy's pool then reports the cancelled rollback of that connection at ERROR
level with a traceback, after the stage has succeeded. The server's logging gets one filter
that drops exactly that report; everything else it logs is unchanged.

The server reads its logging configuration from the file `PREFECT_LOGGING_SETTINGS_PATH` names.
`server_logging_config` writes one: the configuration Prefect would use otherwise (the user's
own file where it exists, else Prefect's default) with the filter added to every handler.

This module is imported by the server subprocess (through the configuration's filter factory),
so it imports nothing heavy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path

import yaml

FILTER_NAME = "syncvp_server_shutdown"
FACTORY = f"{__name__}.ShutdownNoise"


class ShutdownNoise(logging.Filter):
    """Drops SQLAlchemy connection-pool records whose exception is a task cancellation: the
    pool's report of a connection reset (rollback) cut short when the server is stopped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("sqlalchemy.pool") or not record.exc_info:
            return True
        return not isinstance(record.exc_info[1], asyncio.CancelledError)


def with_filter(config: dict) -> dict:
    """`config` (a logging dictConfig) with the filter declared and attached to every handler."""
    config = dict(config)
    config["filters"] = {**(config.get("filters") or {}), FILTER_NAME: {"()": FACTORY}}
    handlers = {}
    for name, handler in (config.get("handlers") or {}).items():
        handler = dict(handler)
        handler["filters"] = [*(f for f in handler.get("filters") or [] if f != FILTER_NAME), FILTER_NAME]
        handlers[name] = handler
    config["handlers"] = handlers
    return config


def server_logging_config(base: Path, folder: Path) -> Path:
    """Write `folder/server-logging.yml`: the logging configuration file `base` with the filter
    added (its `${SETTING}` templates are kept for Prefect to fill in). The file is written to a
    temporary name and renamed, so that stage processes starting at once never read half of it."""
    config = yaml.safe_load(base.read_text())
    if not isinstance(config, dict):
        raise ValueError(f"{base} is not a logging configuration (a mapping)")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "server-logging.yml"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".server-logging.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(with_filter(config), f, sort_keys=False)
    os.replace(tmp, path)
    return path
