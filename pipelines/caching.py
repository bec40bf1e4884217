"""Cache policies for per-item tasks (one ERA5 month, one video's depth maps, ...).

A cached task is keyed by its inputs, the content of its input files and its own source, never
by the run id, so a rerun in a new process (the next `dvc repro`) skips finished items. Tasks
return small things (paths, stats), never tensors.

DVC deletes a stage's non-persistent outputs before rerunning it, and a cache hit does not
recreate a deleted file: `run_item` therefore refreshes the cache whenever the item's target
file is missing. A task that checks and keeps a large file it made (an ERA5 month) can key on
that file's stamp (size and modification time, `InputFileStamps`): any change to the file since
the cached run (truncated, rewritten) runs the task, and so its checks, again, without reading
the file to hash it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy

from syncvp.io.digest import file_md5 as file_digest  # re-exported: the file-content part of cache keys


@dataclass
class InputFileContents(CachePolicy):
    """Adds the content hash of the files named by the given task arguments to the key."""

    arguments: tuple[str, ...] = ()

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        parts = []
        for name in self.arguments:
            value = inputs.get(name)
            paths = value if isinstance(value, (list, tuple)) else [value]
            parts += [f"{p}:{file_digest(p) if p is not None and Path(p).is_file() else 'missing'}" for p in paths]
        return hashlib.md5("|".join(parts).encode()).hexdigest()


@dataclass
class InputFileStamps(CachePolicy):
    """Adds the size and modification time (ns) of the files named by the given task arguments
    to the key: a stat per file, whatever its size."""

    arguments: tuple[str, ...] = ()

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        parts = []
        for name in self.arguments:
            path = inputs.get(name)
            try:
                stat = Path(path).stat()
                parts.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
            except (OSError, TypeError):
                parts.append(f"{path}:missing")
        return hashlib.md5("|".join(parts).encode()).hexdigest()


def item_policy(*file_arguments: str, exclude: tuple[str, ...] = (), stamped: tuple[str, ...] = ()) -> CachePolicy:
    """Inputs (minus `exclude`) + content of the files in `file_arguments` + stamps (size,
    modification time) of the files in `stamped` + task source."""
    inputs = INPUTS
    for name in exclude:
        inputs = inputs - name
    policy = inputs + TASK_SOURCE
    if file_arguments:
        policy = policy + InputFileContents(arguments=file_arguments)
    return policy + InputFileStamps(arguments=stamped) if stamped else policy


def run_item(task, target: str | Path, *args: Any, **kwargs: Any) -> Any:
    """Call a cached task, refreshing its cache when its output `target` does not exist."""
    return task.with_options(refresh_cache=not Path(target).exists())(*args, **kwargs)
