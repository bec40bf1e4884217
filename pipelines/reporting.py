"""Turn library progress events and result rows into Prefect logs and artifacts."""

from __future__ import annotations

import re
import time
from typing import Any, Sequence

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from syncvp.progress import ProgressEvent


def artifact_key(*parts: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


class PrefectProgress:
    """A `ProgressCallback` that logs at most every `every_s` seconds (and at the end) and keeps
    a Prefect progress artifact up to date."""

    def __init__(self, key: str, description: str, every_s: float = 10.0):
        self.key, self.description, self.every_s = artifact_key(key), description, every_s
        self._artifact_id = None
        self._last = 0.0
        self._logger = get_run_logger()

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        final = event.total is not None and event.done >= event.total
        if not final and now - self._last < self.every_s:
            return
        self._last = now
        percent = 100.0 * (event.fraction or 0.0)
        if self._artifact_id is None:
            self._artifact_id = create_progress_artifact(progress=percent, key=self.key, description=self.description)
        else:
            update_progress_artifact(self._artifact_id, progress=percent)
        numbers = " ".join(f"{k}={v:.4g}" for k, v in event.metrics.items())
        total = f"/{event.total}" if event.total else ""
        self._logger.info(f"{event.task}: {event.done}{total} {numbers} {event.message}".rstrip())


def publish_table(key: str, rows: Sequence[dict[str, Any]], description: str) -> None:
    """A Prefect table artifact (shown on the flow run's Artifacts tab)."""
    create_table_artifact(table=list(rows), key=artifact_key(key), description=description)


def publish_markdown(key: str, markdown: str, description: str) -> None:
    """A Prefect Markdown artifact (rendered on the flow run's Artifacts tab)."""
    create_markdown_artifact(markdown=markdown, key=artifact_key(key), description=description)
