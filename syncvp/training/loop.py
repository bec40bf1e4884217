"""The model-agnostic training loop.

One training step = draw `grad_accum` micro-batches, then run each active `Update` in order over
those micro-batches: zero its optimizer, accumulate the gradient of mean(loss over micro-batches),
check the loss and the gradient norm are finite, clip, step the optimizer and its scheduler.
A GAN is two updates (generator, then discriminator); a diffusion model is one.

Callbacks run after every step (evaluation, checkpoints, logging); a NaN/inf loss or gradient
raises `NonFiniteLossError` before any optimizer step, so the last checkpoint written is good.

Data-parallel (`syncvp.training.distributed`): when the process group is up, each update's
gradients are averaged over ranks after the micro-batches and before clipping, so every rank
applies the same step; the reported loss metrics are the local rank's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor

from syncvp.progress import ProgressEvent, ProgressFn, no_progress
from syncvp.training import distributed
from syncvp.training.state import TrainState

LossFn = Callable[[Any, int], tuple[Tensor, Mapping[str, Tensor | float]]]
Callback = Callable[[TrainState, dict[str, float]], None]


class NonFiniteLossError(FloatingPointError):
    """A loss or gradient norm became NaN or infinite; training stops before the optimizer step."""


@dataclass(frozen=True)
class Update:
    """One optimizer update per training step.

    Attributes:
        name: the optimizer (and scheduler, if one has this name) in `TrainState`.
        loss: (micro-batch, step) -> (scalar loss, metrics to report). Runs under autocast.
        clip_groups: parameter groups whose gradient norm is measured (and checked finite),
            each separately; with `max_grad_norm` each group is clipped to it.
        max_grad_norm: clip threshold, or None to only measure.
        active: step -> whether the update runs at this step (e.g. a discriminator after its start).
    """

    name: str
    loss: LossFn
    clip_groups: Sequence[Sequence[Tensor]] = ()
    max_grad_norm: float | None = None
    active: Callable[[int], bool] = lambda step: True


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when enabled; a no-op elsewhere (CPU runs stay fp32)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested) batch to `device`."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _grad_norms(update: Update, step: int) -> dict[str, float]:
    out = {}
    for i, group in enumerate(update.clip_groups):
        grads = [p.grad for p in group if p.grad is not None]
        if not grads:
            continue
        if update.max_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_([p for p in group if p.grad is not None], update.max_grad_norm)
        else:
            norm = torch.nn.utils.get_total_norm(grads)
        norm = float(norm)
        if not torch.isfinite(torch.tensor(norm)):
            raise NonFiniteLossError(f"step {step + 1}: update {update.name!r}: gradient norm of group {i} is {norm}")
        out[f"{update.name}/grad_norm" + (f"{i}" if len(update.clip_groups) > 1 else "")] = norm
    return out


def run_update(
    state: TrainState,
    update: Update,
    micro: Sequence[Any],
    step: int,
    precision: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    sync_gradients: bool = False,
) -> dict[str, float]:
    """Accumulate, check, clip and apply one update over the step's micro-batches (with
    `sync_gradients`, the accumulated gradients are first averaged over the ranks)."""
    optimizer = state.optimizers[update.name]
    optimizer.zero_grad(set_to_none=True)
    totals: dict[str, float] = {}
    for batch in micro:
        with precision():
            loss, metrics = update.loss(batch, step)
        value = float(loss.detach())
        if not torch.isfinite(torch.tensor(value)):
            shown = ", ".join(f"{k}={float(v):.4g}" for k, v in metrics.items())
            raise NonFiniteLossError(
                f"step {step + 1}: update {update.name!r}: loss is {value} ({shown}); "
                "stopped before the optimizer step; the last checkpoint is untouched"
            )
        (loss / len(micro)).backward()
        for k, v in {f"{update.name}/loss": value, **metrics}.items():
            totals[k] = totals.get(k, 0.0) + float(v) / len(micro)
    if sync_gradients:
        distributed.average_gradients(p for group in optimizer.param_groups for p in group["params"])
    totals.update(_grad_norms(update, step))
    optimizer.step()
    if update.name in state.schedulers:
        state.schedulers[update.name].step()
    totals[f"{update.name}/lr"] = optimizer.param_groups[0]["lr"]
    return totals


def fit(
    state: TrainState,
    updates: Sequence[Update],
    batches: Iterator,
    *,
    total_steps: int,
    device: torch.device,
    grad_accum: int = 1,
    amp: bool = False,
    callbacks: Sequence[Callback] = (),
    progress: ProgressFn = no_progress,
    task: str = "train",
    show_bar: bool | None = None,
    sync_gradients: bool | None = None,
) -> TrainState:
    """Train from `state.step` up to `total_steps` optimizer steps.

    Args:
        state: models (already on `device`), optimizers, schedulers, generators, position.
        updates: the updates of one step, in order.
        batches: an infinite iterator of batches (moved to `device` here).
        total_steps: the step count to reach; a state already there returns at once.
        grad_accum: micro-batches per step (each update sees the same ones).
        amp: bf16 autocast on CUDA.
        callbacks: called as cb(state, metrics) after every step, in order.
        progress: receives a `ProgressEvent` after every step (the receiver throttles).
        show_bar: tqdm bar; None shows it only on a terminal (and on rank 0 only when distributed).
        sync_gradients: average gradients over the ranks before each optimizer step; None = when
            the process group has more than one rank. False for models wrapped with `wrap_ddp`.

    Returns:
        The same `state`, advanced.
    """
    from tqdm.auto import tqdm

    for model in state.models.values():
        model.train()
    if sync_gradients is None:
        sync_gradients = distributed.world_size() > 1
    if show_bar is None and not distributed.is_main():
        show_bar = False
    bar = tqdm(
        total=total_steps,
        initial=state.step,
        desc=task,
        disable=None if show_bar is None else not show_bar,
        leave=False,
    )
    try:
        for step in range(state.step, total_steps):
            micro = [to_device(next(batches), device) for _ in range(grad_accum)]
            metrics: dict[str, float] = {}
            for update in updates:
                if update.active(step):
                    metrics.update(
                        run_update(state, update, micro, step, lambda: autocast(device, amp), sync_gradients)
                    )
            state.step = step + 1
            for callback in callbacks:
                callback(state, metrics)
            bar.update(1)
            progress(ProgressEvent(task, state.step, total_steps, metrics))
    finally:
        bar.close()
    return state
