"""Prefect environment defaults, applied before `prefect` is imported.

- state (database, results cache) lives in the project: `$DVC_ROOT/.prefect` (DVC sets DVC_ROOT
  to the main repository even inside `dvc exp` temporary copies, so experiments share the cache);
- no analytics or telemetry (nothing reaches for the network);
- a patient ephemeral-server start-up (the first start runs database migrations);
- results Prefect persists are JSON, never pickles (`pipelines.caching`: the cache holds data).

Values already in the environment win (the Makefile, a user's shell, the test suite), except
that analytics stay off and results stay JSON.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def configure() -> None:
    home = Path(os.environ.setdefault("PREFECT_HOME", str(project_root() / ".prefect")))
    os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(home / "storage"))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["PREFECT_RESULTS_DEFAULT_SERIALIZER"] = "json"
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
