"""Kernel-launch proxy: profiler events of one joint denoiser forward and one joint training step.

Without a GPU, the number of ATen operators a call dispatches stands in for the number of GPU
kernels it would launch (each op launches about one kernel; launch overhead, ~5-10 us each, is
what dominates a batch-1 sampling step). torch.profiler counts them on CPU; on CUDA it also counts
the kernels themselves. Rows: eager, compiled (`guard_compile` with --backend; falls back to
eager with a warning where compiling fails) and, on CUDA, the forward replayed from a CUDA graph
(`GraphedDenoiser`: one graph launch per step).

    python -m benchmarks.launches                          # tiny config, CPU, eager + aot_eager
    python -m benchmarks.launches --backend inductor       # minutes on CPU
    python -m benchmarks.launches --size paper --device cuda --backend inductor
"""

from __future__ import annotations

import argparse
import itertools
import warnings


def _events(fn) -> dict:
    """Run `fn` once under the profiler: top-level ATen ops, all ATen ops, CUDA kernels."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=activities) as prof:
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
    events = prof.events()
    aten = [e for e in events if e.name.startswith("aten::")]
    top = [e for e in aten if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    kernels = [e for e in events if str(getattr(e, "device_type", "")).endswith("CUDA")]
    return {"aten_ops_top": len(top), "aten_ops_all": len(aten), "cuda_kernels": len(kernels)}


def _joint(size: str, device):
    import torch

    from benchmarks.scale import _shapes
    from syncvp.models.factory import build_joint_unet

    _, unet_cfg, _, joint_cfg, future, context = _shapes(size)
    mods = ("rgb", "depth")
    torch.manual_seed(0)
    model = build_joint_unet(unet_cfg, joint_cfg, {m: (future, context) for m in mods}).to(device).eval()
    z = {m: torch.randn(1, future.channels, future.length, device=device) for m in mods}
    c = {m: torch.randn(1, context.channels, context.length, device=device) for m in mods}
    t = torch.full((1,), 500, dtype=torch.long, device=device)
    return model, z, c, t


def count_forward(size: str, device, *, graph: bool = False, backend: str | None = None) -> dict:
    """Events of one joint denoiser forward (batch 1, no grad, bf16 autocast on CUDA), after one
    warm-up call: eager, compiled with `backend`, or replayed from a CUDA graph."""
    import torch

    from syncvp.training.fastpath import GraphedDenoiser, guard_compile

    device = torch.device(device)
    model, z, c, t = _joint(size, device)
    notes: list[str] = []
    if backend:
        guard_compile(model, backend=backend, warn=notes.append)

    def fn(zz, tt):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda", cache_enabled=False):
            return model(zz, tt, c)

    call = GraphedDenoiser(fn, z, t, warn=notes.append) if graph else fn
    with torch.no_grad():
        call(z, t)  # warm-up (compiles, if compiled)
        counts = _events(lambda: call(z, t))
    path = "graph" if graph else f"compiled ({backend})" if backend else "eager"
    if graph and getattr(call, "graph", None) is None:
        path += " (not captured: plain call)"
    return {"what": "joint forward", "size": size, "device": device.type, "path": path, **counts, "notes": notes}


def count_train_step(size: str, device, *, backend: str | None = None) -> dict:
    """Events of one joint training step through `fit` (batch 1: loss, backward, clipping, AdamW),
    after one warm-up step."""
    import torch

    from benchmarks.scale import Row, _train_task
    from syncvp.training.fastpath import guard_compile
    from syncvp.training.loop import Update, fit
    from syncvp.training.optim import adamw
    from syncvp.training.state import TrainState

    device = torch.device(device)
    model, loss = _train_task(Row("joint train", size, True, device.type, 0, 1, 1, False), "cpu")
    model = model.to(device)
    model, loss = _train_task(Row("joint train", size, True, device.type, 0, 1, 1, False), device, model=model)
    notes: list[str] = []
    if backend:
        guard_compile(model, backend=backend, warn=notes.append)
    state = TrainState(
        models={"m": model}, optimizers={"m": adamw(model.parameters(), lr=1e-5, betas=(0.9, 0.999), weight_decay=0.0)}
    )
    update = Update("m", lambda b, s: (loss(b, s), {}), clip_groups=[list(model.parameters())])

    def step():
        fit(
            state, [update], itertools.repeat(None), total_steps=state.step + 1, device=device, amp=True, show_bar=False
        )

    step()
    counts = _events(step)
    path = f"compiled ({backend})" if backend else "eager"
    return {"what": "joint train step", "size": size, "device": device.type, "path": path, **counts, "notes": notes}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.launches", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="tiny", choices=["tiny", "paper"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--backend", default="aot_eager", help="torch.compile backend of the compiled rows ('' = none)")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [count_forward(args.size, args.device), count_train_step(args.size, args.device)]
    if args.backend:
        rows += [
            count_forward(args.size, args.device, backend=args.backend),
            count_train_step(args.size, args.device, backend=args.backend),
        ]
    if args.device.startswith("cuda"):
        rows.insert(1, count_forward(args.size, args.device, graph=True))
    print(f"torch {torch.__version__}, {args.size} config, device {args.device}")
    print(f"{'what':18s} {'path':28s} {'top ATen ops':>12s} {'all ATen ops':>12s} {'CUDA kernels':>12s}")
    for r in rows:
        print(
            f"{r['what']:18s} {r['path']:28s} {r['aten_ops_top']:12d} {r['aten_ops_all']:12d} {r['cuda_kernels']:12d}"
        )
        for note in r["notes"]:
            print(f"    note: {note}")


if __name__ == "__main__":
    main()
