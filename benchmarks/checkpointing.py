"""Activation checkpointing (`run.activation_checkpointing`): the memory it saves and the time it
costs, per training step of the joint model (or the stage-1 UNet) through the real loop (`fit`).

Each row runs in a fresh process, so that memory figures do not carry over between rows. On CUDA
memory comes from the caching allocator (`torch.cuda.max_memory_allocated`, and the allocated
bytes before and after the loss's forward pass). On CPU it comes from the process's resident
memory, in a second fresh process per row that runs with glibc's mmap threshold fixed at 64 KiB
(`MALLOC_MMAP_THRESHOLD_`): every tensor larger than that is then its own mapping, returned to
the system when freed, so the resident size follows the live tensors (the time is taken in the
first process, with glibc's defaults, because fresh mappings for every tensor slow the step
down). Per row:

- step_s: median seconds per optimizer step (loss, backward, gradient norm, AdamW), after a
  warm-up step;
- activations_mib: memory held when the loss's forward pass ends, above what was held when it
  started (the tensors autograd keeps for the backward pass, plus the loss's own inputs);
- peak_mib: the process's peak (CPU: peak resident size, weights, gradients and optimizer state
  included; CUDA: peak allocated).

Without checkpointing every block keeps the intermediate results of its forward pass; with it, a
`UNetBlock` in training keeps only its inputs and recomputes the rest in the backward pass.

    python -m benchmarks.checkpointing --threads 2                      # paper config, batch 1, 2, 4
    python -m benchmarks.checkpointing --size tiny --batches 8,16 --threads 2
    python -m benchmarks.checkpointing --device cuda --batches 8,32
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MMAP_THRESHOLD = str(64 * 1024)
WORKS = {"joint": "joint train", "unet": "UNet train"}


def _resident_mib() -> float:
    """This process's resident memory now (Linux /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(
    size: str, work: str, batch: int, checkpointing: bool, steps: int, device: str, *, channels_last: bool = False
) -> dict:
    """One row, in this process (`channels_last`: the model as `run.channels_last` lays it out)."""
    import torch

    from benchmarks.scale import Row, _train_task
    from syncvp.models.unet_blocks import set_activation_checkpointing
    from syncvp.training.fastpath import prepare_model
    from syncvp.training.loop import Update, fit
    from syncvp.training.optim import adamw
    from syncvp.training.state import TrainState

    device = torch.device(device)
    cuda = device.type == "cuda"
    row = Row(WORKS[work], size, True, device.type, 0, 1, 1, False)
    model, _ = _train_task(row, "cpu", batch=batch)
    set_activation_checkpointing(model, checkpointing)
    model = prepare_model(model.to(device), channels_last=channels_last, compile=False)
    model, loss = _train_task(row, device, batch=batch, model=model)
    state = TrainState(
        models={"m": model}, optimizers={"m": adamw(model.parameters(), lr=1e-5, betas=(0.9, 0.999), weight_decay=0.0)}
    )
    now = (lambda: torch.cuda.memory_allocated() / 2**20) if cuda else _resident_mib
    held: list[float] = []

    def measured_loss(b, s):
        before = now()
        value = loss(b, s)
        held.append(now() - before)
        return value, {}

    stamps: list[float] = []

    def record(st, m):
        if cuda:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    update = Update("m", measured_loss, clip_groups=[list(model.parameters())])
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    fit(
        state,
        [update],
        itertools.repeat(None),
        total_steps=1 + steps,
        device=device,
        amp=cuda,
        callbacks=[record],
        show_bar=False,
    )
    peak = (
        torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "size": size,
        "work": work,
        "device": device.type,
        "batch": batch,
        "checkpointing": checkpointing,
        "step_s": statistics.median(b - a for a, b in zip(stamps, stamps[1:])),
        "activations_mib": statistics.median(held[1:]),
        "peak_mib": peak,
        "params": sum(p.numel() for p in model.parameters()),
    }


def _child(args, batch: int, checkpointing: bool, memory: bool) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.checkpointing", "--child", f"{batch},{int(checkpointing)}"]
    cmd += ["--size", args.size, "--work", args.work, "--steps", str(args.steps), "--device", args.device]
    cmd += ["--threads", str(args.threads)]
    env = dict(os.environ)
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    if memory:
        env["MALLOC_MMAP_THRESHOLD_"] = MMAP_THRESHOLD
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"row batch {batch}, checkpointing {checkpointing} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_row(args, batch: int, checkpointing: bool) -> dict:
    """One row: on CUDA one fresh process; on CPU one for the time (glibc defaults) and one for the
    memory (mmap threshold fixed)."""
    row = _child(args, batch, checkpointing, memory=False)
    if row["device"] == "cpu":
        mem = _child(args, batch, checkpointing, memory=True)
        row.update(activations_mib=mem["activations_mib"], peak_mib=mem["peak_mib"])
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| batch | checkpointing | step s | activations MiB | peak MiB | time on / off | activations off / on |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    off = {r["batch"]: r for r in rows if not r["checkpointing"]}
    for r in rows:
        base = off.get(r["batch"])
        cost = saved = "-"
        if r["checkpointing"] and base:
            cost = f"{r['step_s'] / base['step_s']:.2f}x"
            saved = f"{base['activations_mib'] / max(r['activations_mib'], 1e-9):.2f}x"
        lines.append(
            f"| {r['batch']} | {'on' if r['checkpointing'] else 'off'} | {r['step_s']:.3f} | "
            f"{r['activations_mib']:.0f} | {r['peak_mib']:.0f} | {cost} | {saved} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.checkpointing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", default="paper", choices=["tiny", "paper"])
    parser.add_argument("--work", default="joint", choices=sorted(WORKS))
    parser.add_argument("--batches", default="1,2,4", help="comma-separated batch sizes")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row (after one warm-up)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # BATCH,CHECKPOINTING: measure one row here
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        batch, on = (int(v) for v in args.child.split(","))
        print(json.dumps(measure(args.size, args.work, batch, bool(on), args.steps, args.device)))
        return
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        parser.error(f"--batches must be comma-separated integers, got {args.batches!r}")
    if any(b < 1 for b in batches):
        parser.error("every batch size must be >= 1")
    rows = [run_row(args, b, on) for b in batches for on in (False, True)]
    first = rows[0]
    print(
        f"activation checkpointing, {args.work} model at {args.size} ({first['params'] / 1e6:.2f} M parameters), "
        f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.steps} steps"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
