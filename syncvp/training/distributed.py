"""Data-parallel training across processes (`torchrun`), with a no-op single-process path.

A run under `torchrun --nproc_per_node N` sees RANK / WORLD_SIZE / LOCAL_RANK in its environment;
`init()` then joins the process group (NCCL on CUDA, gloo on CPU). Without those variables (or with
WORLD_SIZE=1) nothing is initialised and every helper here is a cheap no-op, so the same training
code runs single-process.

How a training step is made data-parallel (the contract the generic loop implements):

- the global batch B (params `batch_size`) is split: each rank loads B / N clips (`per_rank_batch`),
  the `EpochSampler` giving rank r the keys r, r + N, r + 2N... of each epoch's permutation, so the
  N ranks of one step together see exactly the clips a single process would;
- every rank computes the mean loss of its B / N clips; `fit` then replaces each gradient by its
  mean over ranks (`average_gradients`, one flattened all-reduce per update and step, after the
  gradient-accumulation micro-batches), which is the gradient of the mean loss over the global
  batch; clipping and the optimizer step then run identically on every rank, so the weights stay
  bit-identical across ranks;
- only rank 0 writes checkpoints, exports, metrics and plots (`is_main`); every rank reads the same
  checkpoint to resume;
- randomness that is drawn per clip inside the loss (noise, timesteps, random frames) comes from
  generators salted with the rank (`rank_salt`), so ranks do not draw the same numbers; their
  states are gathered into rank 0's checkpoint (`TrainState.checkpoint`) and each rank restores
  its own. Such a run equals a single-process run exactly only for losses that draw no randomness;
  with random draws it is the same distribution, not the same numbers.

`wrap_ddp(model)` returns torch's `DistributedDataParallel` wrapper for code that routes its
forward pass through it (gradient all-reduce overlapped with the backward pass); such code passes
`sync_gradients=False` to `fit`. The generic loop does not need it: objectives hold the plain
module and `fit` averages the gradients.
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched() -> bool:
    """Whether this process was started by torchrun (or an equivalent launcher) for > 1 process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if initialized() else 0


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes files and reports."""
    return rank() == 0


def init(device: torch.device, timeout_s: float = 1800.0) -> torch.device:
    """Join the process group when launched for several processes; return this rank's device.

    Backend: NCCL when `device` is CUDA (each rank then uses GPU LOCAL_RANK), gloo otherwise.
    Idempotent; a single process (no WORLD_SIZE > 1 in the environment) initialises nothing.

    Raises:
        RuntimeError: the launcher's variables are incomplete, or CUDA ranks outnumber the GPUs.
    """
    if initialized() or not launched():
        return _local_device(device)
    missing = [k for k in _ENV + ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {missing} are not set: "
            "start the stage through torchrun (run.processes > 1 does this)"
        )
    device = _local_device(device, int(os.environ["LOCAL_RANK"]))
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend, timeout=datetime.timedelta(seconds=timeout_s), device_id=device if device.type == "cuda" else None
    )
    return device


def _local_device(device: torch.device, local: int | None = None) -> torch.device:
    if device.type != "cuda":
        return device
    index = local if local is not None else (device.index or 0)
    if index >= torch.cuda.device_count():
        raise RuntimeError(
            f"local rank {index} has no GPU ({torch.cuda.device_count()} visible): "
            "lower run.processes to the number of GPUs per node"
        )
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def shutdown() -> None:
    """Leave the process group (end of a distributed run)."""
    if initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if initialized():
        dist.barrier()


def planned_world(processes: int) -> int:
    """The world size a run will have: WORLD_SIZE under a launcher, else `processes` (run.processes)."""
    return int(os.environ["WORLD_SIZE"]) if "WORLD_SIZE" in os.environ else processes


def per_rank_batch(batch_size: int, world: int | None = None, key: str = "batch_size") -> int:
    """The per-rank share B / N of a global batch; B must be a multiple of N.

    Raises:
        ValueError: naming `key`, when N does not divide B.
    """
    world = world_size() if world is None else world
    if batch_size % world:
        raise ValueError(
            f"{key} = {batch_size} is the global batch and must be a multiple of the "
            f"{world} processes (run.processes x nodes); each process loads {key} / {world}"
        )
    return batch_size // world


def rank_salt() -> tuple[Any, ...]:
    """Extra salt for per-rank random streams: () single-process (streams unchanged), else ("rank", r)."""
    return ("rank", rank()) if world_size() > 1 else ()


def average_gradients(parameters: Iterable[Tensor]) -> None:
    """Replace every existing gradient by its mean over ranks (in place; a no-op single-process).

    Gradients are flattened per (device, dtype) into one buffer, all-reduced (sum) and divided by
    N, i.e. g <- (1/N) sum_r g_r. Parameters without a gradient are skipped; as with DDP, every rank
    must have gradients for the same parameters.
    """
    if world_size() == 1:
        return
    buckets: dict[tuple, list[Tensor]] = {}
    for p in parameters:
        if p.grad is not None:
            buckets.setdefault((p.grad.device, p.grad.dtype), []).append(p.grad)
    for grads in buckets.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world_size()
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def all_gather_object(obj: Any) -> list[Any]:
    """[obj of rank 0, ..., obj of rank N-1] on every rank ([obj] single-process)."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def wrap_ddp(model: nn.Module, device: torch.device | None = None, **kwargs) -> nn.Module:
    """`DistributedDataParallel(model)` when distributed, else `model` itself.

    Use the wrapper only for the forward pass (state dicts and checkpoints stay on `model`) and pass
    `sync_gradients=False` to `fit`, which then leaves the averaging to DDP.
    """
    if world_size() == 1:
        return model
    ids = [device.index] if device is not None and device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, **kwargs)
