"""Speed options for trained networks that leave the results unchanged within float tolerance.

- channels-last: 4-D convolution weights (and so the activations that flow through them) in NHWC
  memory layout, which cuDNN and oneDNN run faster; values are identical up to the summation order
  of the convolution (tests: <= 1e-5 relative on fp32).
- `torch.compile` (`nn.Module.compile`, in place, so state dicts and checkpoints keep their keys):
  fused kernels; worth it on GPUs for long runs, minutes of compilation on CPU. Compilation
  happens at a module's first call (and again for new shapes); where it fails (a dynamo or
  inductor error, e.g. torch 2.11's `InductorError` on the joint model), `guard_compile` runs that
  call and every later one eager, with one warning naming the module and the reason, so compiling
  never ends a run. An error that eager raises too is the caller's and propagates.
- pinned host memory for DataLoader batches on CUDA (asynchronous host-to-device copies).
- bf16 autocast on CUDA lives in `syncvp.training.loop.autocast` (`amp` params); losses stay fp32.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import nn

COMPILE_BACKEND = "inductor"  # torch.compile's backend for run.compile (tests swap in others)
_logger = logging.getLogger(__name__)


def prepare_model(
    model: nn.Module, *, channels_last: bool, compile: bool, warn: Callable[[str], None] = _logger.warning
) -> nn.Module:
    """Apply the speed options to `model` in place (run.channels_last, run.compile); returns it."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        guard_compile(model, backend=COMPILE_BACKEND, warn=warn)
    return model


def guard_compile(model: nn.Module, *, backend="inductor", warn: Callable[[str], None] = _logger.warning) -> nn.Module:
    """`model.compile(backend=backend)` in place, falling back to eager for good (one warning) the
    first time a compiled call fails where the eager call succeeds."""
    model.compile(backend=backend)
    compiled = model._compiled_call_impl  # what nn.Module.__call__ runs while it is set (torch >= 2.2)

    def call(*args, **kwargs):
        try:
            return compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compile failure; eager below re-raises real errors
            out = model._call_impl(*args, **kwargs)
            model._compiled_call_impl = None  # eager from now on
            warn(f"torch.compile failed for {type(model).__name__} ({_reason(exc)}); running it eager")
            return out

    model._compiled_call_impl = call
    return model


def pin_memory(device: torch.device) -> bool:
    """Whether DataLoaders feeding `device` should pin host memory (CUDA only)."""
    return device.type == "cuda"


def _reason(exc: BaseException) -> str:
    """`<wrapper>: <first line of the innermost cause>` (dynamo wraps the backend's error)."""
    root = exc
    while (inner := getattr(root, "inner_exception", None) or root.__cause__) is not None and inner is not root:
        root = inner
    line = (str(root).strip().splitlines() or [""])[0][:300]
    head = type(exc).__name__ if root is exc else f"{type(exc).__name__} <- {type(root).__name__}"
    return f"{head}: {line}" if line else head
