"""Write to a temporary sibling, then rename: an interrupted write never leaves a file that
DVC or Prefect would take for a finished output.

The siblings are named `.<name>.tmp-<random>` (and, for a moment while a folder is replaced,
`.<name>.old-<pid>`). A killed process leaves them behind; `remove_stale` deletes those of one
output, and the stages that write whole folders call it before they start.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)


def _tmp_sibling(path: Path, is_dir: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        tmp.chmod(0o777 & ~_UMASK)
        return tmp
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path in the same directory; rename it to `path` on success.

    On an exception the temporary file is removed and `path` is left untouched.
    """
    path = Path(path)
    tmp = _tmp_sibling(path, is_dir=False)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces `path` (an existing one is removed)."""
    path = Path(path)
    tmp = _tmp_sibling(path, is_dir=True)
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def stale_siblings(path: str | Path) -> list[Path]:
    """The temporary siblings of `path` that `atomic_path` / `atomic_dir` create, by name only:
    `.<name>.tmp-<random>` and `.<name>.old-<pid>` (sorted). Nothing else matches: not another
    output's (`.<other>.tmp-...`), nor `<name>` itself, nor a name with more after the suffix."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(tmp-[a-z0-9_]+|old-[0-9]+)")
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


def remove_stale(path: str | Path) -> list[Path]:
    """Delete the temporary siblings of `path` a killed writer left behind (`stale_siblings`);
    returns them. Call it only where no other process writes `path` at the same time (a DVC
    stage: `dvc repro` locks the workspace)."""
    stale = stale_siblings(path)
    for p in stale:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    return stale


def write_text(path: str | Path, text: str) -> Path:
    """Atomically write a text file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj: object) -> Path:
    """Atomically write JSON (sorted keys, indented: stable bytes for DVC)."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
