"""Speed options for trained networks that leave the results unchanged within float tolerance.

- channels-last: 4-D convolution weights (and so the activations that flow through them) in NHWC
  memory layout, which cuDNN and oneDNN run faster; values are identical up to the summation order
  of the convolution (tests: <= 1e-5 relative on fp32).
- `torch.compile` (`nn.Module.compile`, in place, so state dicts and checkpoints keep their keys):
  fused kernels; worth it on GPUs for long runs, minutes of compilation on CPU. Compilation
  happens at a module's first call (and again for new shapes); where it fails (a dynamo or
  inductor error, e.g. torch 2.11's `InductorError` on the joint model), `guard_compile` runs that
  call and every later one eager, with one warning naming the module and the reason, so compiling
  never ends a run. An error that eager raises too is the caller's and propagates. A module whose
  weights no longer change (the sampler's denoiser) compiles `frozen`: inductor's freezing folds
  the weights, and under autocast their bf16 casts, into the compiled no-grad graph as constants.
- pinned host memory for DataLoader batches on CUDA (asynchronous host-to-device copies).
- CUDA graphs for sampling (`GraphedDenoiser`): one denoiser call of fixed shapes captured once and
  replayed at every sampling step (no per-kernel launch cost); inputs are copied into static
  buffers. On CPU, or where capture fails, it calls the denoiser plainly (one warning).
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
    model: nn.Module,
    *,
    channels_last: bool,
    compile: bool,
    frozen: bool = False,
    warn: Callable[[str], None] = _logger.warning,
) -> nn.Module:
    """Apply the speed options to `model` in place (run.channels_last, run.compile); returns it.
    `frozen`: its weights stay as they are from now on (inference only; see `guard_compile`)."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        guard_compile(model, backend=COMPILE_BACKEND, frozen=frozen, warn=warn)
    return model


def guard_compile(
    model: nn.Module, *, backend="inductor", frozen: bool = False, warn: Callable[[str], None] = _logger.warning
) -> nn.Module:
    """`model.compile(backend=backend)` in place, falling back to eager for good (one warning) the
    first time a compiled call fails where the eager call succeeds.

    frozen: every call runs with inductor's `freezing` on, so its no-grad calls compile with the
    weights as constants of the graph (folded, with their autocast casts, and laid out for the
    kernels once). Only for a module whose weights no longer change, such as the sampler's
    denoiser after loading: a later change of the weights is not seen by no-grad calls. Calls with
    grad enabled compile as usual. (Inductor reads the setting from its global config while it
    compiles; `torch.compile(options={"freezing": True})` did not freeze here, so the setting is
    patched around each call, which leaves other modules' compilations alone.)"""
    model.compile(backend=backend)
    compiled = model._compiled_call_impl  # what nn.Module.__call__ runs while it is set (torch >= 2.2)
    if frozen:
        from torch._inductor import config as inductor_config

        unfrozen = compiled

        def compiled(*args, **kwargs):
            with inductor_config.patch(freezing=True):
                return unfrozen(*args, **kwargs)

    def call(*args, **kwargs):
        try:
            return compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compile failure; eager below re-raises real errors
            out = model._call_impl(*args, **kwargs)
            model._compiled_call_impl = None  # eager from now on
            warn(f"torch.compile failed for {type(model).__name__} ({_reason(exc)}); running it eager")
            _logger.debug("torch.compile failure of %s, full traceback:", type(model).__name__, exc_info=exc)
            return out

    model._compiled_call_impl = call
    return model


class GraphedDenoiser:
    """`fn(z, t)` (z a dict of tensors, t [B]; no grad) replayed from one CUDA graph captured for
    the shapes of `example_z` / `example_t`.

    Each call copies its inputs into the captured static buffers, replays the graph and returns
    copies of the outputs, so the results are those of `fn` run on the same kernels. `fn` must
    close over everything else it reads (the condition, the model) and open any autocast itself
    (with `cache_enabled=False`, as capture needs). Calls with other shapes, calls on CPU and every
    call after a failed capture (one warning; `failed` is then true) run `fn` plainly. Used by the
    sampler's denoiser with `run.cuda_graphs` (`syncvp.prediction.rollout.Predictor.cuda_graphs`)
    and the sampling benchmark (`benchmarks.gpu_suite`), whose GPU check compares it with the plain
    path.
    """

    def __init__(
        self,
        fn: Callable,
        example_z: dict[str, torch.Tensor],
        example_t: torch.Tensor,
        *,
        warmup: int = 2,
        warn: Callable[[str], None] = _logger.warning,
    ):
        self.fn = fn
        self.static_z = {k: v.detach().clone() for k, v in example_z.items()}
        self.static_t = example_t.detach().clone()
        self.graph = None
        self.static_out = None
        self.failed = False  # a capture was tried and failed (warned)
        if example_t.device.type != "cuda":
            return
        try:
            with torch.no_grad():
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):  # warm-up off the capture (cuDNN / cuBLAS set-up)
                    for _ in range(warmup):
                        fn(self.static_z, self.static_t)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    self.static_out = fn(self.static_z, self.static_t)
            self.graph = graph
        except Exception as exc:  # noqa: BLE001 - any capture failure: plain calls from now on
            warn(f"CUDA graph capture failed ({_reason(exc)}); calling the denoiser plainly")
            self.static_out = None
            self.failed = True

    def __call__(self, z: dict[str, torch.Tensor], t: torch.Tensor) -> dict[str, torch.Tensor]:
        same = z.keys() == self.static_z.keys() and all(z[k].shape == v.shape for k, v in self.static_z.items())
        if self.graph is None or not same or t.shape != self.static_t.shape:
            return self.fn(z, t)
        for k, v in self.static_z.items():
            v.copy_(z[k])
        self.static_t.copy_(t)
        self.graph.replay()
        return {k: v.clone() for k, v in self.static_out.items()}


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
