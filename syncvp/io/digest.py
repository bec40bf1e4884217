"""Content digests of files (resume fingerprints, cache keys)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


def file_md5(path: str | Path, chunk: int = 1 << 20) -> str:
    """md5 hex digest of a file's bytes, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def source_digest(root: str | Path) -> str:
    """sha256 hex digest of the `*.py` files under `root` (relative path and bytes, in path order;
    `__pycache__` left out)."""
    root = Path(root)
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.relative_to(root).parts:
            continue
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


@lru_cache(maxsize=1)
def code_digest() -> str:
    """`source_digest` of the library (the `syncvp` package), once per process. Resume
    fingerprints include it, so a checkpoint or a cached evaluation batch made by other code is
    never taken for one of this code: DVC reruns a stage when its code changes, and the rerun
    must then compute, not reuse."""
    return source_digest(Path(__file__).resolve().parents[1])
