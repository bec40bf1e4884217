"""Seeded construction: a module's initial weights as a pure function of a seed (the same on
every rank of a distributed run), without touching the rest of the process's random state."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, TypeVar

import torch

T = TypeVar("T")


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
