"""Content digests of files (resume fingerprints, cache keys)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_md5(path: str | Path, chunk: int = 1 << 20) -> str:
    """md5 hex digest of a file's bytes, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
