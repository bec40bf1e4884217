"""One resumable-checkpoint schema for every training stage.

A checkpoint is a dict:

    {"format": "syncvp-checkpoint", "version": 1,
     "config_hash": str,            # what the run was configured with (see `config_hash`)
     "step": int,                   # optimizer steps completed
     "models": {name: state_dict}, "optimizers": {name: state_dict}, "schedulers": {name: state_dict},
     "rng": {"torch": ByteTensor, "cuda": [ByteTensor, ...], "generators": {name: ByteTensor},
             "numpy": {name: json str}},
     "extra": {...}}                # plain data: data-stream position, metric history, phase...

It is written atomically (temporary file + rename) and read with `torch.load(weights_only=True)`,
so only tensors and plain Python containers may appear in it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from syncvp.io.atomic import atomic_path
from syncvp.io.model_file import read_torch_file

FORMAT, VERSION = "syncvp-checkpoint", 1
KEYS = ("config_hash", "step", "models", "optimizers", "schedulers", "rng", "extra")


class CheckpointError(ValueError):
    """A checkpoint file is not one this code can resume from."""


def config_hash(config: Any) -> str:
    """sha256 of a JSON-able description of a run's configuration (keys sorted)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def capture_rng(
    generators: Mapping[str, torch.Generator] = {}, numpy_generators: Mapping[str, np.random.Generator] = {}
) -> dict:
    """The global torch (CPU and CUDA) RNG states plus the states of the given generators."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {k: g.get_state() for k, g in generators.items()},
        "numpy": {k: json.dumps(g.bit_generator.state) for k, g in numpy_generators.items()},
    }


def restore_rng(
    state: Mapping,
    generators: Mapping[str, torch.Generator] = {},
    numpy_generators: Mapping[str, np.random.Generator] = {},
) -> None:
    """Inverse of `capture_rng` (every named generator must be in the checkpoint)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, gen in generators.items():
        if name not in state["generators"]:
            raise CheckpointError(f"the checkpoint holds no state for generator {name!r}")
        gen.set_state(state["generators"][name])
    for name, gen in numpy_generators.items():
        if name not in state["numpy"]:
            raise CheckpointError(f"the checkpoint holds no state for numpy generator {name!r}")
        gen.bit_generator.state = json.loads(state["numpy"][name])


def make_checkpoint(
    *,
    config_hash: str,
    step: int,
    models: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] = {},
    schedulers: Mapping[str, Any] = {},
    rng: dict | None = None,
    extra: dict | None = None,
) -> dict:
    """Assemble a checkpoint dict from live objects."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "config_hash": config_hash,
        "step": int(step),
        "models": {k: m.state_dict() for k, m in models.items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        "rng": rng if rng is not None else capture_rng(),
        "extra": extra or {},
    }


def save_checkpoint(path: str | Path, checkpoint: dict) -> Path:
    """Write atomically: a crash mid-write leaves the previous file intact."""
    missing = [k for k in KEYS if k not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint to write lacks {missing}")
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *, remedy: str | None = None) -> dict:
    """Read a checkpoint with `weights_only=True` and check its schema.

    Raises:
        CheckpointError: a one-line message naming the file and what is wrong with it (empty,
            truncated, foreign, another version), followed by `remedy` when given.
    """
    tail = f"; {remedy}" if remedy else ""
    ckpt = read_torch_file(
        path, FORMAT, label="training checkpoint", remedy=remedy, error=CheckpointError, map_location=map_location
    )
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')} (this code reads {VERSION}){tail}")
    missing = [k for k in KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}{tail}")
    return ckpt
