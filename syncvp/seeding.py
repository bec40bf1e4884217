"""Explicit random streams. Library code never touches global RNG state.

A stream is identified by a base seed and a tuple of "salt" integers or strings (epoch, index,
purpose...), so the same item gets the same numbers whatever the worker count or call order.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stream_seed(seed: int, *salt: int | str) -> int:
    """A 63-bit seed derived from `seed` and `salt` (stable across processes and platforms)."""
    text = ":".join([str(seed), *map(str, salt)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def numpy_rng(seed: int, *salt: int | str) -> np.random.Generator:
    """A numpy Generator for the stream `(seed, *salt)`."""
    return np.random.default_rng(stream_seed(seed, *salt))


def torch_generator(seed: int, *salt: int | str, device: str = "cpu"):
    """A torch.Generator for the stream `(seed, *salt)` (torch imported lazily)."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(stream_seed(seed, *salt))
    return gen


def seed_everything(seed: int) -> None:
    """Seed the global RNGs. For entry points only (third-party code that uses them)."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
