"""Inductor's Triton code generation for the joint model, on a machine without a GPU.

`torch.compile` crashed the joint model on a GPU under torch 2.11 (the speed issue:
`InductorError: ValueError: The argument '((ModularIndexing((-1280), 32, 8))//2)' is not
comparable`), while inductor's C++ code generator compiles it on CPU. This diagnostic runs
inductor's Triton code generator on the CPU instead (`torch._inductor.config.cpu_backend =
"triton"`): every kernel's Triton source is generated, but none is compiled or run. Triton's
compile step is replaced by a stand-in that keeps the source and does nothing, and the backend
hash (which needs a GPU driver) by a constant. The model's outputs are therefore garbage; what
counts is whether code generation gets through the whole graph (forward, or with --train the
forward and backward of a training step). Inductor's caches are off, so the code is generated
afresh.

It shows whether the crash lies in what inductor's Triton path shares across devices, or in
what it does for CUDA only (device properties, CUDA lowerings such as the flash-attention
kernels), which only a GPU run can show.

    python -m benchmarks.triton_codegen                                  # tiny config, forward
    python -m benchmarks.triton_codegen --size paper --train --batch 8 --channels-last --bf16
    python -m benchmarks.triton_codegen --size paper --train --out /tmp/kernels   # keep sources

Prints one JSON line (ok, kernels generated, seconds, torch and triton versions, the error if
any); the exit status is 1 when code generation failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


class _StandInKernel:
    """What the generated module gets instead of a compiled Triton kernel: calls do nothing."""

    def __call__(self, *args, **kwargs) -> None:
        return None

    def run(self, *args, **kwargs) -> None:
        return None


def _patch_inductor(sources: list[tuple[str, str]]) -> None:
    """Route inductor's CPU code generation to Triton, and keep each kernel's source instead of
    compiling it."""
    import torch._inductor.async_compile as async_compile
    import torch._inductor.config as inductor_config
    import torch.utils._triton as torch_triton

    inductor_config.cpu_backend = "triton"
    inductor_config.force_disable_caches = True
    torch_triton.triton_hash_with_backend = lambda: "codegen-only"

    def triton(self, kernel_name, source_code, *args, **kwargs):
        sources.append((kernel_name, source_code))
        return _StandInKernel()

    async_compile.AsyncCompile.triton = triton


def generate(size: str, *, train: bool, batch: int, channels_last: bool, bf16: bool) -> dict:
    """Compile the joint model's forward (or training step) through inductor's Triton code
    generator on CPU; {ok, kernels, seconds, error}."""
    import torch

    sources: list[tuple[str, str]] = []
    _patch_inductor(sources)
    from benchmarks.scale import _shapes
    from syncvp.models.factory import build_joint_unet

    _, unet_cfg, _, joint_cfg, future, context = _shapes(size)
    torch.manual_seed(0)
    mods = ("rgb", "depth")
    model = build_joint_unet(unet_cfg, joint_cfg, {m: (future, context) for m in mods}).train(train)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    z = {m: torch.randn(batch, future.channels, future.length) for m in mods}
    c = {m: torch.randn(batch, context.channels, context.length) for m in mods}
    t = torch.full((batch,), 500, dtype=torch.long)
    compiled = torch.compile(model)
    start = time.perf_counter()
    error = None
    try:
        with torch.set_grad_enabled(train), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = compiled(z, t, c)
            if train:
                sum(v.float().sum() for v in out.values()).backward()
    except Exception as exc:  # noqa: BLE001 - the point is to report it
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:500]}"
    return {
        "ok": error is None,
        "kernels": len(sources),
        "seconds": time.perf_counter() - start,
        "error": error,
        "sources": sources,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.triton_codegen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", default="tiny", choices=["tiny", "paper"])
    parser.add_argument("--train", action="store_true", help="a training step: forward and backward")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="under bf16 autocast (CPU autocast's op lists)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--out", type=Path, help="write each generated kernel's source here")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f"--batch must be >= 1, got {args.batch}")

    import warnings

    import torch

    warnings.filterwarnings("ignore", message="dynamo_pgo force disabled")
    try:
        import triton
    except ImportError:
        parser.error("triton is not installed (it comes with torch's Linux wheels)")
    if args.threads:
        torch.set_num_threads(args.threads)
    res = generate(args.size, train=args.train, batch=args.batch, channels_last=args.channels_last, bf16=args.bf16)
    sources = res.pop("sources")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for i, (name, src) in enumerate(sources):
            tmp = args.out / f".{i:04d}_{name}.py.tmp"
            tmp.write_text(src)
            os.replace(tmp, args.out / f"{i:04d}_{name}.py")
    res.update(
        size=args.size,
        train=args.train,
        batch=args.batch,
        channels_last=args.channels_last,
        bf16=args.bf16,
        torch=torch.__version__,
        triton=triton.__version__,
    )
    print(json.dumps(res))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
