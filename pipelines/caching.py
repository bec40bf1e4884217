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

The cache holds data, not code. Cached tasks store their results with Prefect's JSON serializer
(`result_serializer=RESULT_SERIALIZER`; `pipelines.env` makes JSON the default too). But Prefect
reads a stored record with the serializer the record itself names (pickle, or JSON with a decoder
given as an import path), so a file planted in the storage folder would run code on the next
cache hit whatever the task writes with. `item_policy` therefore vets the record of the key it
computes before Prefect looks it up (`check_record`): one that is not plain JSON data written by
Prefect's JSON serializer is deleted with a warning, the lookup misses, and the task runs again
and stores a JSON record. Results must be plain JSON (str, numbers, bools, None, lists, dicts):
return `str(path)`, not a `Path`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.exceptions import MissingContextError
from prefect.logging import get_logger, get_run_logger
from prefect.serializers import JSONSerializer
from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH

from syncvp.io.digest import file_md5 as file_digest  # re-exported: the file-content part of cache keys


@dataclass
class InputFileContents(CachePolicy):
    """Adds the content hash of the files named by the given task arguments to the key."""

    arguments: tuple[str, ...] = ()

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
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

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        parts = []
        for name in self.arguments:
            path = inputs.get(name)
            try:
                stat = Path(path).stat()
                parts.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
            except (OSError, TypeError):
                parts.append(f"{path}:missing")
        return hashlib.md5("|".join(parts).encode()).hexdigest()


RESULT_SERIALIZER = "json"
_JSON_SERIALIZER = JSONSerializer().model_dump(mode="json")


class CacheRecordError(ValueError):
    """A stored result record that is not plain JSON data written by Prefect's JSON serializer."""


def _plain(obj: dict) -> dict:
    encoded = obj.get("__class__") or obj.get("__exc_type__")
    if encoded:  # Prefect's decoder would import the class it names and build one
        raise CacheRecordError(f"its result holds an encoded object ({encoded})")
    return obj


def check_record(content: bytes) -> None:
    """Raise CacheRecordError unless `content` is a result record written by Prefect's default
    JSON serializer whose result is plain JSON data."""
    try:
        record = json.loads(content)
        serializer, result = record["metadata"]["serializer"], record["result"]
    except (ValueError, KeyError, TypeError):
        raise CacheRecordError("it is not a JSON result record") from None
    if serializer != _JSON_SERIALIZER or not isinstance(result, str):
        kind = serializer.get("type") if isinstance(serializer, dict) else serializer
        raise CacheRecordError(f"its serializer is {kind!r}, not Prefect's JSON serializer with its defaults")
    try:
        json.loads(result, object_hook=_plain)
    except ValueError as exc:
        raise CacheRecordError(f"its result is not plain JSON data ({exc})") from None


def record_path(task_ctx: Any, key: str) -> Path:
    """Where Prefect stores the record of `key`: the task's local result storage (the default,
    PREFECT_RESULTS_LOCAL_STORAGE_PATH)."""
    storage = getattr(getattr(task_ctx, "result_store", None), "result_storage", None)
    resolve = getattr(storage, "_resolve_path", None)
    return Path(resolve(key)) if resolve else Path(PREFECT_RESULTS_LOCAL_STORAGE_PATH.value()) / key


def discard_unsafe_record(path: Path) -> None:
    """Delete the record at `path` (with a warning) unless it is plain JSON data."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return
    try:
        check_record(content)
    except CacheRecordError as exc:
        path.unlink()
        _logger().warning(f"deleted the cached result {path}: {exc}; the task runs again")


def _logger():
    try:
        return get_run_logger()  # the task run's log, shown in the UI
    except MissingContextError:
        return get_logger("caching")


@dataclass
class JsonRecordsOnly(CachePolicy):
    """`policy`'s key, after deleting a stored record of that key that is not plain JSON data
    (Prefect would load it with whatever serializer it names), so that the lookup misses."""

    policy: CachePolicy | None = None

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        key = self.policy.compute_key(task_ctx, inputs, flow_parameters, **kwargs)
        if key is not None:
            discard_unsafe_record(record_path(task_ctx, key))
        return key


def item_policy(*file_arguments: str, exclude: tuple[str, ...] = (), stamped: tuple[str, ...] = ()) -> CachePolicy:
    """Inputs (minus `exclude`) + content of the files in `file_arguments` + stamps (size,
    modification time) of the files in `stamped` + task source; records that are not plain JSON
    data are discarded before the lookup (`JsonRecordsOnly`). Use it with
    `result_serializer=RESULT_SERIALIZER`."""
    inputs = INPUTS
    for name in exclude:
        inputs = inputs - name
    policy = inputs + TASK_SOURCE
    if file_arguments:
        policy = policy + InputFileContents(arguments=file_arguments)
    if stamped:
        policy = policy + InputFileStamps(arguments=stamped)
    return JsonRecordsOnly(policy=policy)


def run_item(task, target: str | Path, *args: Any, **kwargs: Any) -> Any:
    """Call a cached task, refreshing its cache when its output `target` does not exist."""
    return task.with_options(refresh_cache=not Path(target).exists())(*args, **kwargs)
