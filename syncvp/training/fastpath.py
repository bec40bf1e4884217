"""Speed options for trained networks that leave the results unchanged within float tolerance.

- channels-last: 4-D convolution weights (and so the activations that flow through them) in NHWC
  memory layout, which cuDNN and oneDNN run faster; values are identical up to the summation order
  of the convolution (tests: <= 1e-5 relative on fp32).
- `torch.compile` (`nn.Module.compile`, in place, so state dicts and checkpoints keep their keys):
  fused kernels; worth it on GPUs for long runs, minutes of compilation on CPU.
- pinned host memory for DataLoader batches on CUDA (asynchronous host-to-device copies).
- bf16 autocast on CUDA lives in `syncvp.training.loop.autocast` (`amp` params); losses stay fp32.
"""

from __future__ import annotations

import torch
from torch import nn


def prepare_model(model: nn.Module, *, channels_last: bool, compile: bool) -> nn.Module:
    """Apply the speed options to `model` in place (run.channels_last, run.compile); returns it."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        model.compile()
    return model


def pin_memory(device: torch.device) -> bool:
    """Whether DataLoaders feeding `device` should pin host memory (CUDA only)."""
    return device.type == "cuda"
