"""Process-level setup for training: device choice, CPU threads, seeded module construction."""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator, TypeVar

import torch

T = TypeVar("T")


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; "cuda" without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run.device is 'cuda' but no CUDA device is available (use 'auto' or 'cpu')")
    return torch.device(name)


THREADS_ENV = "SYNCVP_THREADS"


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
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's global CPU RNG seeded to `seed`, restoring it afterwards.

    Module constructors draw their initial weights from the global RNG; this makes them a pure
    function of `seed` without leaking state into the rest of the process.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_seeded(factory: Callable[[], T], seed: int) -> T:
    """`factory()` with its random initialisation drawn from `seed`."""
    with seeded(seed):
        return factory()
