"""Roofline estimate of a GPU training step or sampling step, made without a GPU.

The step runs on fake tensors (`torch._subclasses.fake_tensor.FakeTensorMode`: shapes, dtypes
and strides, no data, no arithmetic), so the paper configuration at batch 256 takes seconds on a
CPU. Every ATen operator it dispatches is recorded with its FLOPs (`torch.utils.flop_counter`'s
formulas) and the bytes it reads and writes (its tensor arguments and results; views and
allocations cost nothing). Each operator stands for one GPU kernel, whose time is estimated as

    max(FLOPs / (peak x compute efficiency), bytes / (bandwidth x memory efficiency), floor)

and the step's time as the sum over its kernels, from which the share of the chip's bf16 peak
follows. Two bounds are printed: "ideal" (efficiencies 1, no floor) and "estimate" (the stated
efficiencies and per-kernel floor), and, per category (matmul/conv, attention, normalization,
casts, elementwise, optimizer), kernels, FLOPs, bytes, estimated time and how many kernels are
compute-bound. "fused" is the estimate with every normalization, cast and elementwise kernel
folded into its neighbours (their bytes and floors gone), the most that fusing them
(torch.compile) could give.

What the GPU would run is emulated as follows:
- bf16 autocast with CUDA's policy: the fake tensors live on the CPU (autograd's engine needs a
  real device for CUDA tensors), so CPU autocast runs with CUDA's float32 rule for the ops whose
  policy differs on CPU (group_norm, layer_norm, softmax, log_softmax, exp, pow run in float32
  on CUDA; CPU autocast would keep them in bf16);
- `F.scaled_dot_product_attention` is one fused kernel (flash / memory-efficient attention), so
  it is recorded as one operator (`roofline::attention`, and `roofline::attention_backward`)
  that reads q, k, v (and the mask) and writes the output, not the [L, L] score matrix of the
  CPU's math path;
- channels-last 4-D weights; gradient clipping with foreach kernels and fused AdamW, as
  `syncvp.training.optim.adamw` and `fit` run on CUDA.

It is an estimate, not a measurement: real kernels reach different efficiencies at different
shapes (small matrix products far less than large ones), and the fused bound assumes perfect
fusion. The GPU suite (`benchmarks.gpu_suite`) measures the real figures; this script says where
the time would go and what bounds follow.

    python -m benchmarks.roofline                                  # paper config, joint, batch 8 / 32 / 128
    python -m benchmarks.roofline --work sampling --batches 1,16   # one denoiser call (no grad)
    python -m benchmarks.roofline --work unet,autoencoder --batches 32 --json out.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
import threading
from collections.abc import Iterator
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# H100 / H200 SXM datasheets: dense bf16 tensor-core peak, dense fp32 (no tensor cores), HBM
PEAK_TFLOPS = 989.0
FP32_TFLOPS = 67.0
BANDWIDTH_TBS = {"h200": 4.8, "h100": 3.35}
WORKS = ("joint", "unet", "autoencoder", "sampling")
CATEGORIES = ("matmul/conv", "attention", "normalization", "casts", "elementwise", "optimizer")
FUSIBLE = ("normalization", "casts", "elementwise")  # what "fused" folds into neighbouring kernels

# ops that move no data: views, metadata, allocations without a fill
FREE = {
    "_unsafe_view",
    "_reshape_alias",
    "alias",
    "detach",
    "lift_fresh",
    "empty",
    "empty_like",
    "empty_strided",
    "new_empty",
    "new_empty_strided",
    "_local_scalar_dense",
    "sym_size",
    "sym_stride",
    "sym_numel",
    "sym_storage_offset",
    "is_same_size",
    "_has_compatible_shallow_copy_type",
    "set_",
}
WRITE_ONLY = {"zero_", "fill_", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "new_zeros"}
NORMALIZATION = ("group_norm", "layer_norm", "batch_norm")


# --------------------------------------------------------------------------------------------
# Attention as one fused kernel


_busy = threading.local()  # inside a real attention kernel: SDPA calls pass through


@torch.library.custom_op("roofline::attention", mutates_args=())
def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """softmax(q k^T / sqrt(d) + mask) v as one kernel (real tensors: SDPA itself)."""
    _busy.on = True
    try:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    finally:
        _busy.on = False


@attention.register_fake
def _(q, k, v, mask):
    if q.dim() == 4:  # [B, H, L, D]: flash / memory-efficient kernels write it as [B, L, H, D]
        b, h, length, _ = q.shape
        return q.new_empty(b, length, h, v.shape[-1]).transpose(1, 2)
    return q.new_empty(*q.shape[:-1], v.shape[-1])


@torch.library.custom_op("roofline::attention_backward", mutates_args=())
def attention_backward(grad: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, mask: Tensor | None) -> list[Tensor]:
    """(dq, dk, dv) of `attention` as one kernel; reads what flash attention's backward reads
    (the output among them). Real tensors: the softmax attention's gradient written out."""
    scale = q.shape[-1] ** -0.5
    scores = q @ k.transpose(-2, -1) * scale
    p = torch.softmax(scores if mask is None else scores + mask, dim=-1)
    dv = p.transpose(-2, -1) @ grad
    dp = grad @ v.transpose(-2, -1)
    ds = p * (dp - (dp * p).sum(-1, keepdim=True))
    return [ds @ k * scale, ds.transpose(-2, -1) @ q * scale, dv]


@attention_backward.register_fake
def _(grad, q, k, v, out, mask):
    return [torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)]


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:3], output)
    ctx.mask = inputs[3]


def _backward(ctx, grad):
    q, k, v, out = ctx.saved_tensors
    dq, dk, dv = attention_backward(grad, q, k, v, out, ctx.mask)
    return dq, dk, dv, None


attention.register_autograd(_backward, setup_context=_setup)


class FusedAttention(TorchFunctionMode):
    """Routes `F.scaled_dot_product_attention` to `roofline::attention`, casting its floating
    inputs to the autocast dtype first when CPU autocast is on (SDPA is in autocast's lower-
    precision list on CUDA too)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention or getattr(_busy, "on", False):
            return func(*args, **kwargs)
        q, k, v = args[:3]
        mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
        rest = {n: val for n, val in kwargs.items() if n != "attn_mask"}
        if len(args) > 4 or any(val not in (None, 0.0, False) for val in rest.values()):
            raise NotImplementedError(f"roofline: SDPA with {list(rest)} / extra arguments is not modelled")
        if torch.is_autocast_enabled("cpu"):
            dtype = torch.get_autocast_dtype("cpu")
            q, k, v = (x.to(dtype) for x in (q, k, v))
            mask = mask.to(dtype) if mask is not None and mask.is_floating_point() else mask
        return attention(q, k, v, mask)


# --------------------------------------------------------------------------------------------
# CUDA's autocast policy on the CPU


FP32_ON_CUDA = {  # aten op -> overload: run in float32 under CUDA autocast, kept in bf16 on CPU
    "group_norm": "default",
    "layer_norm": "default",
    "softmax": "int",
    "log_softmax": "int",
    "exp": "default",
    "pow": "Tensor_Scalar",
}


@contextlib.contextmanager
def cuda_autocast(dtype: torch.dtype = torch.bfloat16) -> Iterator[None]:
    """CPU autocast with CUDA's float32 rule for the ops of FP32_ON_CUDA."""
    lib = torch.library.Library("aten", "IMPL")
    keys = torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU)

    def fp32(op):
        def kernel(*args, **kwargs):
            with torch._C._ExcludeDispatchKeyGuard(keys):
                args = [a.float() if isinstance(a, Tensor) and a.is_floating_point() else a for a in args]
                return op(*args, **kwargs)

        return kernel

    try:
        for name, overload in FP32_ON_CUDA.items():
            lib.impl(
                name if overload == "default" else f"{name}.{overload}",
                fp32(getattr(getattr(torch.ops.aten, name), overload)),
                "AutocastCPU",
            )
        with torch.autocast("cpu", dtype=dtype):
            yield
    finally:
        lib._destroy()


# --------------------------------------------------------------------------------------------
# Recording


@dataclasses.dataclass
class Op:
    name: str  # namespace::op
    category: str
    flops: float
    bytes: float
    dtype: str  # of the first tensor input (what a matmul/conv runs in)


def _nbytes(t: Tensor) -> int:
    """Bytes a kernel touches for `t`: its elements, or its storage where fewer (expanded views)."""
    n = t.numel() * t.element_size()
    try:
        return min(n, t.untyped_storage().nbytes())
    except (RuntimeError, NotImplementedError):
        return n


def _category(name: str, flops: float) -> str:
    base = name.split("::")[-1]
    if base.startswith("attention"):
        return "attention"
    if flops > 0:
        return "matmul/conv"
    if any(base.startswith(n) or base.startswith(f"native_{n}") for n in NORMALIZATION):
        return "normalization"
    if base in ("_to_copy", "to_copy"):
        return "casts"
    if base.startswith(("_fused_adam", "_foreach_")):
        return "optimizer"
    return "elementwise"


class Recorder(TorchDispatchMode):
    """Records every data-moving ATen (and roofline::) operator with its FLOPs and bytes."""

    def __init__(self):
        super().__init__()
        self.ops: list[Op] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        namespace, base = func.namespace, func._schema.name.split("::")[-1]
        if namespace == "prim" or base in FREE or func.is_view:
            return out
        ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, Tensor)]
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, Tensor)]
        flops = _flops(func, args, kwargs, out)
        if base in WRITE_ONLY:
            moved = sum(_nbytes(t) for t in outs)
        elif base == "copy_":  # reads the source, writes the destination
            moved = _nbytes(args[1]) + _nbytes(args[0])
        else:
            moved = sum(_nbytes(t) for t in ins) + sum(_nbytes(t) for t in outs)
        name = f"{namespace}::{base}"
        dtype = str(ins[0].dtype).removeprefix("torch.") if ins else ""
        self.ops.append(Op(name, _category(name, flops), float(flops), float(moved), dtype))
        return out


def _flops(func, args, kwargs, out) -> float:
    from torch.utils.flop_counter import flop_registry, sdpa_backward_flop_count, sdpa_flop_count

    base = func._schema.name.split("::")[-1]
    if func.namespace == "roofline":
        q, k, v = args[:3] if base == "attention" else args[1:4]
        if base == "attention":
            return sdpa_flop_count(q.shape, k.shape, v.shape)
        return sdpa_backward_flop_count(args[0].shape, q.shape, k.shape, v.shape)
    counter = flop_registry.get(func._overloadpacket)
    return counter(*args, **kwargs, out_val=out) if counter is not None else 0


# --------------------------------------------------------------------------------------------
# The time model


@dataclasses.dataclass(frozen=True)
class Chip:
    peak_tflops: float = PEAK_TFLOPS  # dense bf16
    fp32_tflops: float = FP32_TFLOPS
    bandwidth_tbs: float = BANDWIDTH_TBS["h200"]
    compute_efficiency: float = 0.7  # of peak, a large bf16 GEMM on cuBLAS / cuDNN
    memory_efficiency: float = 0.8  # of bandwidth, a streaming kernel
    floor_us: float = 2.0  # shortest kernel: launch and ramp-up, back to back

    def ideal(self) -> Chip:
        return dataclasses.replace(self, compute_efficiency=1.0, memory_efficiency=1.0, floor_us=0.0)

    def times(self, op: Op) -> dict[str, float]:
        """Seconds by limit: arithmetic, memory traffic, the per-kernel floor."""
        peak = self.peak_tflops if op.dtype in ("bfloat16", "float16") else self.fp32_tflops
        return {
            "compute": op.flops / (peak * 1e12 * self.compute_efficiency),
            "memory": op.bytes / (self.bandwidth_tbs * 1e12 * self.memory_efficiency),
            "floor": self.floor_us * 1e-6,
        }

    def seconds(self, op: Op) -> float:
        return max(self.times(op).values())

    def bound(self, op: Op) -> str:
        """What sets the kernel's time: "compute", "memory" or "floor"."""
        times = self.times(op)
        return max(times, key=times.get)


def summarize(ops: list[Op], chip: Chip) -> dict:
    """Totals, the ideal / estimated / fused time and share of peak, and the per-category rows."""
    flops = sum(o.flops for o in ops)
    ideal, real = chip.ideal(), chip
    t_ideal = sum(ideal.seconds(o) for o in ops)
    t_real = sum(real.seconds(o) for o in ops)
    t_fused = sum(real.seconds(o) for o in ops if o.category not in FUSIBLE)
    share = lambda t: flops / t / (chip.peak_tflops * 1e12) if t > 0 else None  # noqa: E731
    cats = {}
    for c in CATEGORIES:
        mine = [o for o in ops if o.category == c]
        if mine:
            t = sum(real.seconds(o) for o in mine)
            cats[c] = {
                "kernels": len(mine),
                "gflop": sum(o.flops for o in mine) / 1e9,
                "gb": sum(o.bytes for o in mine) / 1e9,
                "ms": t * 1e3,
                "share_of_time": t / t_real,
                "compute_bound": sum(1 for o in mine if real.bound(o) == "compute"),
            }
    return {
        "kernels": len(ops),
        "tflop": flops / 1e12,
        "gb_moved": sum(o.bytes for o in ops) / 1e9,
        "ideal_ms": t_ideal * 1e3,
        "estimate_ms": t_real * 1e3,
        "fused_ms": t_fused * 1e3,
        "share_ideal": share(t_ideal),
        "share_estimate": share(t_real),
        "share_fused": share(t_fused),
        "categories": cats,
    }


# --------------------------------------------------------------------------------------------
# The steps


def _channels_last(model: torch.nn.Module) -> None:
    """4-D parameters to channels-last in place (`Module.to` cannot swap fake parameters)."""
    for mod in model.modules():
        for name, p in list(mod._parameters.items()):
            if p is not None and p.dim() == 4:
                mod._parameters[name] = torch.nn.Parameter(
                    p.detach().contiguous(memory_format=torch.channels_last), requires_grad=p.requires_grad
                )


def _task(work: str, size: str, batch: int, precast: bool = True) -> tuple[torch.nn.Module, Callable[[], Tensor]]:
    """(model, the step's forward: the training loss, or one denoiser call for `sampling`: the
    network frozen, and with `precast` its linear and convolution weights stored in bf16)."""
    from benchmarks.scale import Row, _train_task

    name = {"joint": "joint train", "unet": "UNet train", "autoencoder": "autoencoder train", "sampling": "joint train"}
    model, loss = _train_task(Row(name[work], size, True, "cpu", 0, 1, 1, False), "cpu", batch=batch)
    if work != "sampling":
        return model, lambda: loss(None, 0)
    from benchmarks.scale import _shapes

    _, _, _, _, future, context = _shapes(size)
    mods = ("rgb", "depth")
    z = {m: torch.randn(batch, future.channels, future.length) for m in mods}
    c = {m: torch.randn(batch, context.channels, context.length) for m in mods}
    t = torch.full((batch,), 500, dtype=torch.long)
    model.eval().requires_grad_(False)  # as load_predictor hands it to the sampler
    if precast:  # bf16 sampling
        from syncvp.prediction.load import precast_weights

        precast_weights(model)
    return model, lambda: model(z, t, c)


def record(work: str, size: str, batch: int, precast: bool = True) -> list[Op]:
    """The operators of one step on fake tensors: a training step (loss under bf16 autocast,
    backward, clipping, fused AdamW) or, for `sampling`, one no-grad denoiser call of the network
    as `load_predictor` hands it to the sampler for bf16 sampling (`precast=False`: without its
    weights stored in bf16, so that autocast casts them at every call)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True):
        torch.manual_seed(0)
        model, forward = _task(work, size, batch, precast)
        _channels_last(model)
        recorder = Recorder()
        if work == "sampling":
            with torch.no_grad(), FusedAttention(), cuda_autocast(), recorder:
                forward()
            return recorder.ops
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-5, fused=True)
        with FusedAttention():
            for mode in (contextlib.nullcontext(), recorder):  # the second step: AdamW's state exists
                optimizer.zero_grad(set_to_none=True)
                with cuda_autocast(), mode:
                    loss = forward()
                with mode:
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
                    optimizer.step()
        return recorder.ops


def rows(works: list[str], size: str, batches: list[int], chip: Chip, precast: bool = True) -> Iterator[dict]:
    for work in works:
        for batch in batches:
            res = summarize(record(work, size, batch, precast), chip)
            extra = {"precast": precast} if work == "sampling" else {}
            yield {"work": work, "size": size, "batch": batch, **extra, **res}


def _table(row: dict) -> str:
    pct = lambda v: f"{100 * v:5.1f} %" if v is not None else "  -  "  # noqa: E731
    lines = [
        f"{row['work']} ({row['size']}), batch {row['batch']}: {row['kernels']} kernels, {row['tflop']:.3f} TFLOP, "
        f"{row['gb_moved']:.2f} GB moved",
        f"  ideal {row['ideal_ms']:.2f} ms ({pct(row['share_ideal'])} of peak)   estimate {row['estimate_ms']:.2f} ms "
        f"({pct(row['share_estimate'])})   fused {row['fused_ms']:.2f} ms ({pct(row['share_fused'])})",
        f"  {'category':14s} {'kernels':>8s} {'GFLOP':>10s} {'GB':>8s} {'ms':>8s} {'time':>7s} {'compute-bound':>13s}",
    ]
    for c, v in row["categories"].items():
        lines.append(
            f"  {c:14s} {v['kernels']:8d} {v['gflop']:10.1f} {v['gb']:8.2f} {v['ms']:8.2f} {pct(v['share_of_time'])} {v['compute_bound']:13d}"
        )
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated batch sizes, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {text!r}")
    return values


def _works(text: str) -> list[str]:
    works = text.split(",")
    bad = [w for w in works if w not in WORKS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown work {bad[0]!r} (known: {', '.join(WORKS)})")
    return works


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.roofline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=_works, default=["joint"], help=f"comma-separated: {', '.join(WORKS)}")
    parser.add_argument("--size", choices=("paper", "tiny"), default="paper")
    parser.add_argument("--batches", type=_ints, default=[8, 32, 128])
    parser.add_argument("--chip", choices=sorted(BANDWIDTH_TBS), default="h200", help="sets --bandwidth-tbs")
    parser.add_argument("--peak-tflops", type=float, default=PEAK_TFLOPS, help="dense bf16 peak")
    parser.add_argument("--bandwidth-tbs", type=float, help="memory bandwidth (default: the chip's)")
    parser.add_argument("--compute-efficiency", type=float, default=Chip.compute_efficiency)
    parser.add_argument("--memory-efficiency", type=float, default=Chip.memory_efficiency)
    parser.add_argument("--floor-us", type=float, default=Chip.floor_us, help="shortest kernel, microseconds")
    parser.add_argument(
        "--no-precast",
        action="store_true",
        help="sampling: the network's weights left in float32, cast by autocast at every call",
    )
    parser.add_argument("--json", help="also append one JSON line per row to this file")
    args = parser.parse_args(argv)
    for name in ("peak_tflops", "compute_efficiency", "memory_efficiency"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0) or (name.endswith("efficiency") and value > 1):
            parser.error(
                f"--{name.replace('_', '-')} must be > 0{' and <= 1' if 'efficiency' in name else ''}, got {value}"
            )
    chip = Chip(
        peak_tflops=args.peak_tflops,
        bandwidth_tbs=args.bandwidth_tbs or BANDWIDTH_TBS[args.chip],
        compute_efficiency=args.compute_efficiency,
        memory_efficiency=args.memory_efficiency,
        floor_us=args.floor_us,
    )
    print(
        f"chip: {chip.peak_tflops:g} TFLOP/s bf16 ({chip.compute_efficiency:g} reached), {chip.bandwidth_tbs:g} TB/s "
        f"({chip.memory_efficiency:g} reached), {chip.floor_us:g} us per kernel at least",
        flush=True,
    )
    for row in rows(args.work, args.size, args.batches, chip, not args.no_precast):
        print(_table(row), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps({**row, "chip": dataclasses.asdict(chip)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
