"""`TrainState`: everything a training run needs to stop and carry on exactly where it was, and
the two readings of its checkpoint file: `resume` (carry on, if the file is this configuration's)
and `load_finished` (the file of a run that reached its last step, for export)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import nn

from syncvp.io import checkpoint as ckpt_io
from syncvp.training import distributed, optim


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> Any: ...


@dataclass
class TrainState:
    """The live objects of a run and its position.

    Attributes:
        models: trained networks by name (their raw weights are what resume restores).
        optimizers, schedulers: by name; an `Update` names the optimizer (and the scheduler of
            the same name, if any) it steps.
        generators: torch generators that draw the run's randomness (noise, frame indices...).
        streams: resumable data streams (e.g. `BatchStream`) by name.
        step: optimizer steps completed.
        extra: plain data saved with the checkpoint (metric history, phase bookkeeping).
    """

    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    schedulers: dict[str, Any] = field(default_factory=dict)
    generators: dict[str, torch.Generator] = field(default_factory=dict)
    streams: dict[str, Stateful] = field(default_factory=dict)
    step: int = 0
    extra: dict = field(default_factory=dict)

    def checkpoint(self, config_hash: str) -> dict:
        """The checkpoint dict of this state (see `syncvp.io.checkpoint`).

        Distributed, this is a collective call (every rank must make it): the RNG states of ranks
        1..N-1 are gathered into `extra["rank_rng"]` and the world size into `extra["world"]`;
        models, optimizers and streams are identical on every rank and taken from this one.
        """
        rng = ckpt_io.capture_rng(self.generators)
        extra = dict(self.extra, streams={k: s.state_dict() for k, s in self.streams.items()})
        world = distributed.world_size()
        if world > 1:
            extra.update(world=world, rank_rng=distributed.all_gather_object(rng)[1:])
        return ckpt_io.make_checkpoint(
            config_hash=config_hash,
            step=self.step,
            models=self.models,
            optimizers=self.optimizers,
            schedulers=self.schedulers,
            rng=rng,
            extra=extra,
        )

    def save(self, path: str | Path, config_hash: str) -> Path:
        return ckpt_io.save_checkpoint(path, self.checkpoint(config_hash))

    def restore(self, ckpt: dict) -> None:
        """Load a checkpoint dict into the live objects (strict: names must match); each rank of a
        distributed run restores its own RNG states.

        Raises:
            CheckpointError: names differ, or the checkpoint was written by another number of ranks.
        """
        extra = dict(ckpt["extra"])
        world, rank_rng = extra.pop("world", 1), extra.pop("rank_rng", [])
        if world != distributed.world_size():
            raise ckpt_io.CheckpointError(
                f"checkpoint written by {world} process(es), this run has "
                f"{distributed.world_size()} (the per-process batch and random "
                "streams differ): resume with the same run.processes"
            )
        for kind in ("models", "optimizers", "schedulers"):
            mine, theirs = getattr(self, kind), ckpt[kind]
            if set(mine) != set(theirs):
                raise ckpt_io.CheckpointError(
                    f"checkpoint {kind} {sorted(theirs)} do not match the run's {sorted(mine)}"
                )
            for name, obj in mine.items():
                if isinstance(obj, torch.optim.Optimizer):
                    optim.load_optimizer_state(obj, theirs[name])
                else:
                    obj.load_state_dict(theirs[name])
        rank = distributed.rank()
        ckpt_io.restore_rng(ckpt["rng"] if rank == 0 else rank_rng[rank - 1], self.generators)
        streams = extra.pop("streams", {})
        for name, stream in self.streams.items():
            stream.load_state_dict(streams[name])
        self.extra, self.step = extra, int(ckpt["step"])


def resume(state: TrainState, path: Path, fingerprint: str, log: Callable[[str], None]) -> None:
    """Restore `state` from `path` if it holds this configuration's checkpoint."""
    if not path.exists():
        return
    try:
        ckpt = ckpt_io.load_checkpoint(path)
    except ckpt_io.CheckpointError as exc:
        log(f"ignoring an unreadable checkpoint, training from scratch: {exc}")
        return
    if ckpt["config_hash"] != fingerprint:
        log(f"{path} was written with another configuration (params or data changed): training from scratch")
        return
    try:
        state.restore(ckpt)
    except ckpt_io.CheckpointError as exc:  # e.g. another number of processes; nothing was loaded
        log(f"not resuming {path.name}: {exc}; training from scratch")
        return
    log(f"resumed {path.name} at step {state.step}")


def load_finished(path: Path, fingerprint: str, steps: int, *, remedy: str, what: str = "run") -> dict:
    """The checkpoint at `path` of a run (`what`: "run", "<phase> phase") that reached `steps` with
    the configuration `fingerprint`; `remedy` says how to train it again if the file is unreadable."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: train the unit first")
    ckpt = ckpt_io.load_checkpoint(path, remedy=remedy)
    if ckpt["config_hash"] != fingerprint or ckpt["step"] != steps:
        raise ckpt_io.CheckpointError(
            f"{path} is not the finished {what} of the current configuration (step {ckpt['step']} of {steps})"
        )
    return ckpt
