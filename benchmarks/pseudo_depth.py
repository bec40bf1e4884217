"""Depth-Anything-V2 pseudo-labelling speed and peak memory: frames/s of the whole per-video
inference (`syncvp.data.pseudo_depth.estimate_depth`: resize, network, resize back, per-frame
uint8) for each encoder, frame size, batch size and precision.

    python -m benchmarks.pseudo_depth                          # vits/vitb, 518x518 and 518x1036, batch 1 vs 4
    python -m benchmarks.pseudo_depth --encoders vitb --sizes 518x518 --batches 1 4 --precisions float32 bfloat16
    python -m benchmarks.pseudo_depth --check                  # bf16 / channels-last vs float32: label differences

Every configuration runs in a fresh subprocess, so the peak memory is its own: peak resident set
size of the process on CPU (model + activations + Python/torch runtime), peak allocated CUDA memory
on GPU. Weights are random, in the official layout (speed does not depend on their values); frames are random RGB at the
given size, so the network input is that size. Time: median of `--repeats` passes over `--frames`
frames after one warm-up batch; "cpu s/frame" is the process CPU time per frame (on a shared,
oversubscribed machine, `--threads 1` makes it a load-independent figure).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REFERENCE = "authors' code, ViT-B 518x518, 2-core CPU: 0.253 frames/s; target: >= 0.38 frames/s batched"


def _setup(encoder: str, device: str, threads: int, channels_last: bool = True):
    import torch

    from syncvp.data import pseudo_depth as pdepth
    from syncvp.models.depth_anything import DepthAnythingV2
    from tests.models.depth_anything_weights import random_state_dict

    if threads:
        torch.set_num_threads(threads)
    with torch.device("meta"):
        model = DepthAnythingV2(encoder)
    # random weights in the official layout, scaled so the depth maps are not degenerate
    model.load_state_dict(random_state_dict(encoder), assign=True)
    model = pdepth.prepare_model(model.requires_grad_(False), device)  # channels-last
    return model if channels_last else model.to(memory_format=torch.contiguous_format)


def worker(args) -> dict:
    """One configuration, in this process: {"fps", "peak_mib", "seconds"}."""
    import numpy as np
    import torch

    from syncvp.data import pseudo_depth as pdepth

    h, w = (int(v) for v in args.size.split("x"))
    model = _setup(args.encoder, args.device, args.threads, getattr(args, "channels_last", True))
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, h, w, 3), dtype=np.uint8)

    def run(x):
        return pdepth.estimate_depth(model, x, input_size=min(h, w), batch_size=args.batch, precision=args.precision)

    run(frames[: args.batch])  # warm-up (allocator, oneDNN / cuDNN kernel selection)
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, cpu = [], []
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        run(frames)
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    seconds = statistics.median(times)
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "fps": args.frames / seconds,
        "peak_mib": peak,
        "seconds": times,
        "cpu_s_per_frame": statistics.median(cpu) / args.frames,
    }


def check(args) -> None:
    """How far channels-last (used) and bf16 autocast (precision: bfloat16) move the results from
    contiguous float32 (random weights)."""
    import numpy as np
    import torch

    from syncvp.data import pseudo_depth as pdepth

    for encoder in args.encoders:
        for size in args.sizes:
            h, w = (int(v) for v in size.split("x"))
            nchw = _setup(encoder, args.device, args.threads, channels_last=False)
            x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(1)).to(args.device)
            with torch.inference_mode():
                ref = nchw(x)
                got = nchw.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
            rel = ((got - ref).abs().max() / ref.abs().max()).item()
            print(f"{encoder} {size} channels_last float32: max |diff| / max |depth| = {rel:.1e}", flush=True)
            frames = np.random.default_rng(1).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
            model = nchw  # now channels-last, as prepare_model leaves it
            ref = pdepth.estimate_depth(model, frames, input_size=min(h, w), precision="float32").astype(int)
            got = pdepth.estimate_depth(model, frames, input_size=min(h, w), precision="bfloat16").astype(int)
            _report(encoder, size, "bfloat16", np.abs(got - ref))


def _report(encoder, size, name, diff) -> None:
    print(
        f"{encoder} {size} {name:>22}: uint8 labels vs float32: mean |diff| {diff.mean():.3f}, "
        f"max {diff.max()}, pixels differing {100 * (diff > 0).mean():.2f}%",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pseudo_depth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--encoders", nargs="+", default=["vits", "vitb"], choices=["vits", "vitb", "vitl"])
    parser.add_argument("--sizes", nargs="+", default=["518x518", "518x1036"], help="frame sizes HxW")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--precisions", nargs="+", default=["auto"], choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--frames", type=int, default=4, help="frames per timed pass (a multiple of every batch)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--check", action="store_true", help="print label differences of bf16 / channels-last")
    parser.add_argument("--worker", nargs=4, metavar=("ENCODER", "SIZE", "BATCH", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.encoder, args.size, batch, args.precision = args.worker
        args.batch = int(batch)
        print(json.dumps(worker(args)))
        return 0
    if args.check:
        check(args)
        return 0
    print(
        f"device {args.device}, torch threads {args.threads or 'default'}, {args.frames} frames x {args.repeats} "
        f"repeats, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    print(
        f"{'model':<6} {'input':<9} {'batch':>5} {'precision':<9} {'frames/s':>9} {'s/frame':>8} {'cpu s/frame':>11} "
        f"{'peak MiB':>9}",
        flush=True,
    )
    for encoder in args.encoders:
        for size in args.sizes:
            for precision in args.precisions:
                for batch in args.batches:
                    cmd = [
                        sys.executable,
                        "-m",
                        "benchmarks.pseudo_depth",
                        "--device",
                        args.device,
                        "--frames",
                        str(args.frames),
                        "--repeats",
                        str(args.repeats),
                        "--threads",
                        str(args.threads),
                        "--worker",
                        encoder,
                        size,
                        str(batch),
                        precision,
                    ]
                    res = subprocess.run(cmd, capture_output=True, text=True)
                    if res.returncode:
                        print(f"{encoder:<6} {size:<9} {batch:>5} {precision:<9} failed: {res.stderr.strip()[-300:]}")
                        continue
                    r = json.loads(res.stdout.strip().splitlines()[-1])
                    print(
                        f"{encoder:<6} {size:<9} {batch:>5} {precision:<9} {r['fps']:>9.3f} {1 / r['fps']:>8.2f} "
                        f"{r['cpu_s_per_frame']:>11.2f} {r['peak_mib']:>9.0f}",
                        flush=True,
                    )
    print(REFERENCE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
