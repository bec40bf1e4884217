"""Read the project's torch files with errors that name the file, say what is wrong and what to do.

Every file this project writes with `torch.save` (autoencoders, diffusion models, training
checkpoints, latent caches) is a dict with a "format" key, read back with
`torch.load(weights_only=True)`. A file that is empty, cut short, of another program, or of another
of the project's formats fails with one line such as

    models/synthetic-rgb-future/autoencoder.pt is not a model file this project wrote (truncated or
    foreign: a damaged PyTorch archive of 61440 bytes: ...); rerun
    `dvc repro train_autoencoder@synthetic-rgb-future` or delete it

instead of torch's `OSError: [Errno 22]` or a bare `UnpicklingError` without a path.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Iterable

import torch

ZIP_MAGIC = b"PK\x03\x04"  # `torch.save` writes a zip archive
# the DVC stage that writes each model file, `<models>/<unit>/<file name>`
STAGE_OF = {"autoencoder.pt": "train_autoencoder", "diffusion.pt": "train_single", "joint.pt": "train_joint"}


class ModelFileError(ValueError):
    """A model file (autoencoder, diffusion model) is missing, foreign, truncated, or inconsistent
    with its own configuration."""


def one_line(text: str, limit: int = 160) -> str:
    """`text` on one line (whitespace runs collapsed), cut to `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def rerun_hint(path: str | Path) -> str:
    """What to do about a bad model file: rerun the DVC stage that writes it (known from the
    project's file layout `<models>/<unit>/<file>`), or retrain it."""
    path = Path(path)
    stage = STAGE_OF.get(path.name)
    if stage is None:
        return "retrain it, or point to a file this project wrote"
    return f"rerun `dvc repro {stage}@{path.parent.name}` or delete it"


def load_state(path: Path, mmap: bool = False):
    """`torch.load(path, weights_only=True)` on the CPU; `mmap=True` maps the file, falling back to
    a normal read for files in the legacy non-zip format (which cannot be mapped)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except RuntimeError as exc:
        if not mmap or "mmap" not in str(exc):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def describe_load_failure(path: Path, exc: Exception) -> str:
    """Why `torch.load` failed on an existing regular file, in a few words."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    with open(path, "rb") as handle:
        head = handle.read(len(ZIP_MAGIC) + 12)
    if head.startswith(b"\x80") and not isinstance(exc, pickle.UnpicklingError):  # torch's legacy (pre-1.6) format
        first = re.split(r"(?<=\.)\s", one_line(exc, 400))[0]
        return f"a damaged legacy PyTorch file of {size} bytes: {type(exc).__name__}: {one_line(first, 100)}"
    if not head.startswith(ZIP_MAGIC):
        return f"not a PyTorch archive, it starts with {head!r}"
    if isinstance(exc, pickle.UnpicklingError):
        found = re.search(r"Unsupported global: [^\n]*", str(exc))
        return "it pickles objects other than tensors and plain containers" + (
            f" ({one_line(found.group(0), 80)})" if found else ""
        )
    first = re.split(r"(?<=\.)\s", one_line(exc, 400))[0]  # torch's first sentence; the rest is advice
    return f"a damaged PyTorch archive of {size} bytes: {type(exc).__name__}: {one_line(first, 100)}"


def _foreign(payload: object, fmt: str, keys: Iterable[str]) -> str | None:
    """Why a loaded object is not a `fmt` file with `keys`, or None when it is."""
    if not isinstance(payload, dict):
        return f"it holds a {type(payload).__name__}, not a {fmt} dict"
    found = payload.get("format")
    if found != fmt:
        if isinstance(found, str):
            return f"a {found} file, not a {fmt} file"
        return f"a dict of {one_line(sorted(map(str, payload)), 60)}, not a {fmt} file"
    missing = [k for k in keys if k not in payload]
    return f"a {fmt} file without {missing}" if missing else None


def read_torch_file(
    path: str | Path,
    fmt: str,
    *,
    keys: Iterable[str] = (),
    label: str = "model file",
    remedy: str | None = None,
    error: type[Exception] = ModelFileError,
    map_location: str | torch.device = "cpu",
    mmap: bool = False,
) -> dict:
    """The dict saved in `path` (`torch.load(weights_only=True)`), checked to be a `fmt` file with `keys`.

    Args:
        label: what the file is, for the message ("model file", "latent cache", "checkpoint").
        remedy: what to do, appended to the message after "; " (None: nothing appended).
        error: the exception class raised (its message is one line).
        mmap: map the tensors instead of reading them (a cheap check of a large file).

    Raises:
        error: the path is missing, a directory, unreadable, not a torch file, truncated, or a
            torch file of another kind, with a message naming the path and `remedy`.
    """
    path = Path(path)
    tail = f"; {remedy}" if remedy else ""
    if not path.exists():
        raise error(f"{path} does not exist{tail}")
    if path.is_dir():
        raise error(f"{path} is not a {label} this project wrote (it is a directory){tail}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except PermissionError as exc:
        raise error(f"{path} cannot be read ({exc.strerror}): check its permissions") from None
    except Exception as exc:  # torch raises EOFError, OSError, RuntimeError, UnpicklingError, KeyError...
        reason = describe_load_failure(path, exc)
        raise error(f"{path} is not a {label} this project wrote (truncated or foreign: {reason}){tail}") from None
    reason = _foreign(payload, fmt, keys)
    if reason is not None:
        raise error(f"{path} is not a {label} this project wrote (truncated or foreign: {reason}){tail}")
    return payload
