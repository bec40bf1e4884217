"""One table: training and sampling speed with the fast paths on and off, pseudo-depth speed,
and the pipeline's own overhead.

Rows (each measured in a fresh spawned process, so peak memory is per row):
- train steps/s and peak memory of the autoencoder, the stage-1 UNet and the joint model, through
  the real training loop (`fit`: loss, backward, gradient-norm check, AdamW), batch 1, at the
  paper configuration (Cityscapes 128x128: autoencoder width 192 / depth 8, latent 4 x 1536,
  UNet 256 channels, deep STCA) and at the tiny default of params.yaml;
- seconds per 8-frame chunk of joint sampling with 100 DDIM steps (median of --steps runs of
  --sampling-steps steps, scaled to 100 unless --sampling-steps 100) and per 28-frame rollout
  (4 chunks, computed from the chunk time; the autoencoder encode/decode between chunks is not
  included);
- pseudo-depth frames/s (Depth-Anything-V2, random weights, via benchmarks.pseudo_depth);
- overhead: Prefect flow start-up in a fresh process (ephemeral API), and a no-op `dvc repro`
  in --dvc-repo (a checkout whose pipeline has already run).

"fast off" = explicit softmax(QK^T/sqrt d)V attention, contiguous (NCHW) layout, fp32;
"fast on" = F.scaled_dot_product_attention, channels-last, bf16 autocast on CUDA (+ torch.compile
with --compile). The ratio column is off / on. On CUDA the joint training step also reports the
achieved fraction of the chip's peak bf16 FLOP/s (FLOPs counted by torch.utils.flop_counter).

    python -m benchmarks.scale --threads 2                    # CPU, every row (several minutes)
    python -m benchmarks.scale --sizes tiny --skip depth      # quick
    python -m benchmarks.scale --device cuda --compile --sampling-steps 100 --peak-tflops 989
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import itertools
import math
import multiprocessing as mp
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKS = ("autoencoder train", "UNet train", "joint train", "sampling")
CHUNKS_PER_ROLLOUT = math.ceil(28 / 8)  # a 28-frame rollout = 4 chained 8-frame chunks
KNOWN_PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense tensor-core peaks


@dataclasses.dataclass(frozen=True)
class Row:
    work: str
    size: str  # "paper" | "tiny"
    fast: bool
    device: str
    threads: int
    steps: int
    sampling_steps: int
    compile: bool


# --------------------------------------------------------------------------------------------
# Configurations


def _shapes(size: str):
    """(autoencoder spec, unet cfg, diffusion cfg, joint cfg, future shape, context shape)."""
    from benchmarks.autoencoder import PAPER
    from benchmarks.diffusion import CONTEXT, FUTURE, paper_sections
    from syncvp.config import load_params
    from syncvp.models.autoencoder import AutoencoderSpec

    params = load_params(REPO / "params.yaml")
    if size == "paper":
        unet, diffusion, joint = paper_sections(REPO / "params.yaml")
        return AutoencoderSpec.from_dict({**PAPER, "frames": 8}), unet, diffusion, joint, FUTURE, CONTEXT
    ds = params.datasets["synthetic"]

    def spec(frames):
        return AutoencoderSpec.from_config(params.autoencoder, channels=3, frames=frames, resolution=ds.resolution)

    future, context = spec(ds.future_frames), spec(ds.context_frames)
    return future, params.unet, params.diffusion, params.joint, future.latent_shape, context.latent_shape


def reference_attention(q, k, v, *args, **kwargs):
    """The plain path: softmax(q k^T / sqrt(d)) v, materialising the attention matrix."""
    import torch

    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v


# --------------------------------------------------------------------------------------------
# Measurements (run inside a spawned process)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _train_task(row: Row, device, batch: int = 1, model=None):
    """(model, loss(batch, step)) for a training row (`batch` random clips); pass `model` to reuse
    one already built (and moved) for another batch size."""
    import torch

    from syncvp.diffusion.factory import build_schedule
    from syncvp.diffusion.joint import draw_joint_noise, joint_training_loss
    from syncvp.diffusion.process import sample_timesteps, training_loss
    from syncvp.models.autoencoder import TriplaneAutoencoder
    from syncvp.models.factory import build_joint_unet, build_unet

    spec, unet_cfg, diffusion, joint_cfg, future, context = _shapes(row.size)
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: (torch.rand(*shape, generator=g) * 2 - 1).to(device)  # noqa: E731
    n = batch
    if row.work == "autoencoder train":
        model = TriplaneAutoencoder(spec) if model is None else model
        x = rand(n, spec.channels, spec.frames, *spec.resolution)
        return model, lambda b, s: (model(x)[0].float() - x).abs().mean()
    schedule = build_schedule(diffusion)
    if row.work == "UNet train":
        model = build_unet(unet_cfg, future, context) if model is None else model
        x0, c = rand(n, future.channels, future.length), rand(n, context.channels, context.length)
        return model, lambda b, s: training_loss(
            lambda z, t: model(z, t, c),
            schedule,
            x0,
            t=sample_timesteps(n, diffusion.timesteps, g).to(device),
            noise=torch.randn(x0.shape, generator=g).to(device),
        ).mean()
    mods = ("rgb", "depth")
    model = build_joint_unet(unet_cfg, joint_cfg, {m: (future, context) for m in mods}) if model is None else model
    x0 = {m: rand(n, future.channels, future.length) for m in mods}
    c = {m: rand(n, context.channels, context.length) for m in mods}

    def loss(b, s):
        t, noise = draw_joint_noise({m: v.cpu() for m, v in x0.items()}, diffusion.timesteps, g, same_noise=True)
        return joint_training_loss(
            lambda z, tt: model(z, tt, c),
            schedule,
            x0,
            t=t.to(device),
            noise={m: n.to(device) for m, n in noise.items()},
        ).total

    return model, loss


def measure_train(row: Row, device) -> dict:

    from syncvp.training.fastpath import prepare_model
    from syncvp.training.loop import Update, fit
    from syncvp.training.optim import adamw
    from syncvp.training.state import TrainState

    model, loss = _train_task(row, device)
    model = prepare_model(model.to(device), channels_last=row.fast, compile=row.compile and row.fast)
    state = TrainState(
        models={"m": model}, optimizers={"m": adamw(model.parameters(), lr=1e-5, betas=(0.9, 0.999), weight_decay=0.0)}
    )
    stamps = []
    record = lambda st, m: (_sync(device), stamps.append(time.perf_counter()))  # noqa: E731
    update = Update("m", lambda b, s: (loss(b, s), {}), clip_groups=[list(model.parameters())])
    start = time.perf_counter()
    fit(
        state,
        [update],
        itertools.repeat(None),
        total_steps=1 + row.steps,
        device=device,
        amp=row.fast,
        callbacks=[record],
        show_bar=False,
    )
    per_step = statistics.median(b - a for a, b in zip(stamps, stamps[1:])) if row.steps > 1 else stamps[-1] - stamps[0]
    out = {"seconds": per_step, "first_step": stamps[0] - start}
    if row.work == "joint train" and device.type == "cuda":
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            fit(
                state,
                [update],
                itertools.repeat(None),
                total_steps=state.step + 1,
                device=device,
                amp=row.fast,
                show_bar=False,
            )
        out["flops"] = counter.get_total_flops()
    return out


def measure_sampling(row: Row, device) -> dict:
    import torch

    from syncvp.diffusion.factory import build_schedule
    from syncvp.diffusion.samplers import Sampler
    from syncvp.models.factory import build_joint_unet
    from syncvp.training.fastpath import prepare_model
    from syncvp.training.loop import autocast

    _, unet_cfg, diffusion, joint_cfg, future, context = _shapes(row.size)
    mods = ("rgb", "depth")
    model = build_joint_unet(unet_cfg, joint_cfg, {m: (future, context) for m in mods}).to(device).eval()
    prepare_model(model, channels_last=row.fast, compile=row.compile and row.fast)
    c = {m: torch.zeros(1, context.channels, context.length, device=device) for m in mods}
    sampler = Sampler(
        schedule=build_schedule(diffusion),
        prediction=diffusion.prediction,
        method="ddim",
        steps=row.sampling_steps,
        eta=1.0,
        clip_x0=True,
        rederive_eps=False,
        same_noise=True,
    )

    def sample():
        with torch.no_grad(), autocast(device, row.fast):
            sampler.sample(
                lambda z, s: model(z, s, c),
                {m: (1, future.channels, future.length) for m in mods},
                generator=torch.Generator().manual_seed(1),
                device=device,
            )
        _sync(device)

    sample()  # warm-up
    times = []
    for _ in range(row.steps):
        start = time.perf_counter()
        sample()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times) * 100 / row.sampling_steps}


def run_row(row: Row) -> dict:
    """Entry point of the spawned process: configure, measure, add peak memory."""
    import torch
    import torch.nn.functional as F

    if row.threads:
        torch.set_num_threads(row.threads)
    if not row.fast:
        F.scaled_dot_product_attention = reference_attention
    device = torch.device(row.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    out = (measure_train if row.work.endswith("train") else measure_sampling)(row, device)
    out["peak_mib"] = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return out


def depth_row(fast: bool, args) -> dict:
    from benchmarks import pseudo_depth

    ns = argparse.Namespace(
        encoder="vitb",
        size=args.depth_size,
        device=args.device,
        threads=args.threads,
        frames=args.depth_frames,
        batch=args.depth_frames,
        precision="auto" if fast else "fp32",
        repeats=1,
        channels_last=fast,
    )
    out = pseudo_depth.worker(ns)
    return {"seconds": 1 / out["fps"], "peak_mib": out["peak_mib"]}


# --------------------------------------------------------------------------------------------
# Overhead (measured from this process with fresh subprocesses)


def _seconds(cmd: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def prefect_startup() -> float:
    """Seconds a fresh process spends starting one empty flow, beyond importing Prefect."""
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, PREFECT_HOME=home)
        env.pop("PREFECT_API_URL", None)
        imports = "import pipelines, prefect"
        run = imports + "; from prefect import flow; flow(name='noop')(lambda: None)()"
        _seconds([sys.executable, "-c", run], REPO, env)  # first start creates the database
        return _seconds([sys.executable, "-c", run], REPO, env) - _seconds([sys.executable, "-c", imports], REPO, env)


def dvc_noop(repo: Path) -> float:
    dvc = Path(sys.executable).with_name("dvc")
    return _seconds([str(dvc), "repro"], repo, dict(os.environ))


# --------------------------------------------------------------------------------------------


def _run_isolated(fn, *args) -> dict:
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _print(name: str, size: str, on: dict | None, off: dict | None, unit: str = "s") -> None:
    cell = lambda r: f"{r['seconds']:10.3f} {r['peak_mib']:8.0f}" if r else f"{'-':>10} {'-':>8}"  # noqa: E731
    ratio = f"{off['seconds'] / on['seconds']:6.2f}x" if on and off else f"{'-':>7}"
    rate = f"{1 / on['seconds']:9.3f}" if on else f"{'-':>9}"
    print(f"{name:26s} {size:6s} {cell(off)} {cell(on)} {ratio} {rate} {unit}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--sizes", nargs="+", default=["tiny", "paper"], choices=["tiny", "paper"])
    parser.add_argument("--steps", type=int, default=3, help="timed training steps after one warm-up step")
    parser.add_argument("--sampling-steps", type=int, default=3, help="DDIM steps run (scaled to 100)")
    parser.add_argument("--compile", action="store_true", help="torch.compile in the fast path")
    parser.add_argument("--skip", nargs="*", default=[], choices=["train", "sampling", "depth", "overhead", "off"])
    parser.add_argument("--depth-size", default="518x518")
    parser.add_argument("--depth-frames", type=int, default=2)
    parser.add_argument("--dvc-repo", type=Path, help="a checkout whose pipeline already ran (no-op dvc repro)")
    parser.add_argument("--peak-tflops", type=float, help="the chip's dense bf16 peak (CUDA fraction-of-peak row)")
    args = parser.parse_args(argv)

    import torch

    print(
        f"torch {torch.__version__}, device {args.device}, {args.threads or torch.get_num_threads()} threads, "
        f"batch 1, median of {args.steps} training steps after 1 warm-up; off = explicit attention, NCHW, fp32; "
        f"on = SDPA, channels-last{', bf16' if args.device == 'cuda' else ''}{', compiled' if args.compile else ''}"
    )
    print(
        f"{'work':26s} {'size':6s} {'off s':>10} {'off MiB':>8} {'on s':>10} {'on MiB':>8} {'ratio':>7} {'per s(on)':>9}"
    )
    flops = None
    for size, work in itertools.product(args.sizes, WORKS):
        kind = "train" if work.endswith("train") else "sampling"
        if kind in args.skip:
            continue
        res = {}
        for fast in (False, True):
            if fast or "off" not in args.skip:
                res[fast] = _run_isolated(
                    run_row,
                    Row(work, size, fast, args.device, args.threads, args.steps, args.sampling_steps, args.compile),
                )
        if kind == "train":
            _print(work, size, res.get(True), res.get(False), "steps")
            if "flops" in res.get(True, {}) and size == "paper":
                flops = res[True]["flops"] / res[True]["seconds"]
            continue
        est = " (est.)" if args.sampling_steps != 100 else ""
        _print("sampling 8-frame chunk" + est, size, res.get(True), res.get(False), "chunks")
        scaled = {k: dict(v, seconds=v["seconds"] * CHUNKS_PER_ROLLOUT) for k, v in res.items()}
        _print("rollout 28 frames" + est, size, scaled.get(True), scaled.get(False), "rollouts")
    if "depth" not in args.skip:
        _print(
            f"pseudo-depth ViT-B {args.depth_size}",
            "-",
            _run_isolated(depth_row, True, args),
            None if "off" in args.skip else _run_isolated(depth_row, False, args),
            "frames",
        )
    if "overhead" not in args.skip:
        print(f"{'Prefect flow start-up':26s} {'-':6s} {prefect_startup():10.2f} s per stage process (ephemeral API)")
        if args.dvc_repo:
            print(f"{'no-op dvc repro':26s} {'-':6s} {dvc_noop(args.dvc_repo):10.2f} s in {args.dvc_repo}")
        else:
            print(f"{'no-op dvc repro':26s} {'-':6s} {'-':>10}   (pass --dvc-repo DIR with a reproduced pipeline)")
    if flops is not None:
        name = torch.cuda.get_device_name()
        peak = args.peak_tflops or next((v for k, v in KNOWN_PEAK_BF16_TFLOPS.items() if k in name), None)
        share = f"{flops / 1e12 / peak:.1%} of {peak:g} TFLOP/s" if peak else "peak unknown (--peak-tflops)"
        print(f"joint train step (paper): {flops / 1e12:.1f} TFLOP/s achieved on {name}, {share}")


if __name__ == "__main__":
    main()
