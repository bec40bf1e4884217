"""AdamW step time by implementation, on the joint model's parameters.

Times one `optimizer.step()` (gradients already in place) for torch's three AdamW
implementations and for the one `syncvp.training.optim.adamw` picks on this device:

- loop: `foreach=False`, one small operation after another for each parameter tensor (torch's
  default on CPU);
- foreach: the same operations on lists of tensors (torch's default on CUDA);
- fused: one kernel per chunk of parameters for the whole update;
- ours: `adamw(...)`, the loop on CPU, fused on CUDA (`syncvp.training.optim.implementation`).

The implementations take turns step by step, so that all see the same load. Each row also gives
the minor page faults per step, the largest difference of the parameters from the loop's after
`--check-steps` steps from the same start with the same gradients (0 = bit-identical), and, from
a profiler run, the operators one step dispatches (top-level ATen operators; on CUDA also the
kernels).

    python -m benchmarks.optimizer --threads 2                 # paper config (123.4 M), CPU
    python -m benchmarks.optimizer --size tiny --threads 2     # params.yaml's joint model
    python -m benchmarks.optimizer --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

IMPLEMENTATIONS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
HYPER = dict(lr=1e-5, betas=(0.9, 0.999), weight_decay=0.01)


def joint_parameters(size: str, device) -> list:
    """The trainable parameters of the joint model at `size`, on `device`."""
    import torch

    from benchmarks.scale import _shapes
    from syncvp.models.factory import build_joint_unet

    _, unet_cfg, _, joint_cfg, future, context = _shapes(size)
    torch.manual_seed(0)
    model = build_joint_unet(unet_cfg, joint_cfg, {m: (future, context) for m in ("rgb", "depth")})
    return [p.detach().to(device).requires_grad_() for p in model.parameters() if p.requires_grad]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _operators(step, device) -> dict:
    """Top-level ATen operators (and CUDA kernels) one call of `step` dispatches."""
    from benchmarks.launches import _events

    out = _events(lambda: (step(), _sync(device)))
    return {"aten_ops_top": out["aten_ops_top"], "cuda_kernels": out["cuda_kernels"]}


def measure(size: str, device, repeats: int, check_steps: int, *, profile: bool = True) -> list[dict]:
    """One row per implementation: median step seconds and minor page faults per step (the
    implementations take turns, so that all see the same machine load), max |param - loop's
    param| after `check_steps` steps, operators dispatched per step."""
    import torch

    from benchmarks.authors import minor_faults
    from syncvp.training import optim

    device = torch.device(device)
    start = joint_parameters(size, device)
    g = torch.Generator().manual_seed(1)
    grads = [[torch.randn(p.shape, generator=g).mul_(1e-3).to(device) for p in start] for _ in range(check_steps)]
    ours = optim.implementation(start)
    chosen = "fused" if ours["fused"] else "foreach" if ours["foreach"] else "loop"
    names = [*IMPLEMENTATIONS, "ours"]
    opts, finals = {}, {}
    for name in names:
        params = [p.detach().clone().requires_grad_() for p in start]
        opts[name] = torch.optim.AdamW(params, **HYPER, **(ours if name == "ours" else IMPLEMENTATIONS[name]))
        for step_grads in grads:  # the check: the same start, the same gradients, step after step
            for p, gr in zip(params, step_grads):
                p.grad = gr
            opts[name].step()
        finals[name] = [p.detach().clone() for p in params]
        opts[name].step()  # warm-up
    del grads
    times, faults = {n: [] for n in names}, dict.fromkeys(names, 0)
    for _ in range(repeats):
        for name in names:
            _sync(device)
            before, t0 = minor_faults(), time.perf_counter()
            opts[name].step()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
            faults[name] += minor_faults() - before
    rows = []
    for name in names:
        row = {
            "implementation": name if name != "ours" else f"ours ({chosen})",
            "step_ms": 1e3 * statistics.median(times[name]),
            "page_faults": faults[name] / repeats,
            "max_diff_vs_loop": max(float((a - b).abs().max()) for a, b in zip(finals[name], finals["loop"])),
        }
        if profile:
            row.update(_operators(opts[name].step, device))
        row["speedup_vs_loop"] = 1e3 * statistics.median(times["loop"]) / row["step_ms"]
        rows.append(row)
    return rows


def table(rows: list[dict], header: str) -> str:
    lines = [
        header,
        "| implementation | step ms | vs loop | page faults | max diff from loop | top ATen ops | CUDA kernels |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['implementation']} | {r['step_ms']:.1f} | {r['speedup_vs_loop']:.2f}x | {r['page_faults']:.0f} | "
            f"{r['max_diff_vs_loop']:.3g} | {r.get('aten_ops_top', '-')} | {r.get('cuda_kernels', '-')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.optimizer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="paper", choices=["tiny", "paper"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--check-steps", type=int, default=5)
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats < 1 or args.check_steps < 1:
        parser.error("--repeats and --check-steps must be >= 1")
    rows = measure(args.size, args.device, args.repeats, args.check_steps)
    n = sum(p.numel() for p in joint_parameters(args.size, "cpu"))
    print(
        table(
            rows,
            f"AdamW step, joint model at {args.size} ({n / 1e6:.2f} M parameters), {args.device}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}",
        )
    )


if __name__ == "__main__":
    main()
