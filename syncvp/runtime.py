"""Process setup for every caller (training, evaluation, pseudo-depth, benchmarks): the torch
device a `run.device` setting names, and the CPU threads torch uses."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

THREADS_ENV = "SYNCVP_THREADS"


def resolve_device(name: str) -> torch.device:
    """ "auto" -> CUDA when available, else CPU; "cuda" without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run.device is 'cuda' but no CUDA device is available (use 'auto' or 'cpu')")
    return torch.device(name)


def configure_threads(threads: int) -> None:
    """Set torch's CPU threads (0 keeps torch's default).

    The environment variable SYNCVP_THREADS, when set, replaces `threads` (`run.threads`): the
    parallel runner (`pipelines.waves`) sets it for stages it runs side by side, so that two
    processes share the cores instead of each taking all of them. It changes speed only.
    """
    override = os.environ.get(THREADS_ENV)
    if override is not None:
        try:
            threads = int(override)
        except ValueError:
            raise ValueError(f"{THREADS_ENV}={override!r} must be a whole number of threads >= 0") from None
        if threads < 0:
            raise ValueError(f"{THREADS_ENV}={override!r} must be a whole number of threads >= 0")
    if threads > 0:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Temporarily use `threads` CPU threads (0 = leave torch's setting)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
