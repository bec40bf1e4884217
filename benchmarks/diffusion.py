"""Speed of the latent diffusion networks at the paper's configuration, on CPU.

Paper configuration (docs/method.md §3.3, §4): future latent 4 x 1536 (32 x 32 planes, 8 frames),
context latent 4 x 1152 (2 frames), UNet 256 channels, mult [1, 2], one residual block,
attention everywhere, 8 heads; joint model = two UNets + deep STCA (8 heads). Batch 1.

Measures (median of --repeats after one warm-up):
`--config default` times params.yaml's tiny networks instead, the stage-1 UNet at
`train_single.batch_size` and the joint model at `train_joint.batch_size` (the "per s" column is
then training steps/s of the default pipeline, before data loading and EMA), and compares their
training speed per parameter: steps/s x parameters, and parameter-samples/s (x batch).

- stage-1 UNet: one forward (no grad) and one training step (forward + backward + fused AdamW);
- joint model: one denoising forward (no grad) and one training step (shared-noise joint loss,
  backward, fused AdamW); `benchmarks.authors` times these side by side with the authors' code;
- sampling one 8-frame chunk with 100 DDIM steps (eta 1, the paper's): estimated as 100 x the
  per-step time of a short DDIM run through the real sampler, or measured with --full-sampling.

    python -m benchmarks.diffusion                       # fp32, all rows
    python -m benchmarks.diffusion --precision both      # also every row under bf16 autocast
    python -m benchmarks.diffusion --threads 2 --full-sampling
    python -m benchmarks.diffusion --threads 1 --clock cpu   # one core's CPU time (busy machines)
    python -m benchmarks.diffusion --config default --threads 1   # the tiny default of params.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch

from syncvp.config import load_params
from syncvp.config.diffusion import PAPER_DIFFUSION, DiffusionConfig
from syncvp.diffusion.factory import build_schedule
from syncvp.diffusion.joint import draw_joint_noise, joint_training_loss
from syncvp.diffusion.process import sample_timesteps, training_loss
from syncvp.diffusion.samplers import Sampler
from syncvp.models.factory import build_joint_unet, build_unet
from syncvp.models.triplane import TriplaneShape
from syncvp.models.unet import count_parameters

REPO = Path(__file__).resolve().parents[1]
FUTURE = TriplaneShape.for_video(channels=4, height=128, width=128, frames=8, patch=4)  # 4 x 1536
CONTEXT = TriplaneShape.for_video(channels=4, height=128, width=128, frames=2, patch=4)  # 4 x 1152
MODALITIES = ("rgb", "depth")


def paper_sections(params_path: Path):
    """The repo's unet / diffusion / joint sections with the paper's values."""
    params = load_params(params_path)
    unet = dataclasses.replace(
        params.unet,
        model_channels=256,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(4, 2, 1),
        num_heads=8,
        norm_groups=32,
        dropout=0.0,
        condition_layout="per_plane",
    )
    diffusion = DiffusionConfig(**PAPER_DIFFUSION)
    joint = dataclasses.replace(
        params.joint,
        cross_attention="deep",
        deep_levels=1,
        split_planes=True,
        normalize=True,
        num_heads=8,
        shared_weights=False,
        same_noise=True,
        stca_layout="fixed",
        locality=0.0,
    )
    return unet, diffusion, joint


def default_sections(params_path: Path):
    """params.yaml's unet / diffusion / joint, the latent shapes of its first trained dataset
    under its `autoencoder`, its `train_single.batch_size` and `train_joint.batch_size` (the
    default CPU pipeline)."""
    params = load_params(params_path)
    ds = params.datasets[params.pipeline.train[0]]
    ae = params.autoencoder
    future, context = (
        TriplaneShape.for_video(
            channels=ae.latent_channels, height=ds.resolution[0], width=ds.resolution[1], frames=f, patch=ae.patch_size
        )
        for f in (ds.future_frames, ds.context_frames)
    )
    return (
        params.unet,
        params.diffusion,
        params.joint,
        future,
        context,
        params.train_single.batch_size,
        params.train_joint.batch_size,
    )


CLOCK = time.perf_counter


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = CLOCK()
        fn()
        times.append(CLOCK() - start)
    return statistics.median(times)


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def single_rows(
    unet_cfg,
    diffusion,
    precision: str,
    repeats: int,
    train: bool,
    batch: int = 1,
    future: TriplaneShape = FUTURE,
    context: TriplaneShape = CONTEXT,
) -> dict[str, float]:
    net = build_unet(unet_cfg, future, context)
    schedule = build_schedule(diffusion)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(batch, future.channels, future.length, generator=g) * 2 - 1
    c = torch.rand(batch, context.channels, context.length, generator=g) * 2 - 1
    t = torch.full((batch,), 500)
    rows = {}

    def forward():
        with torch.no_grad(), autocast(precision):
            net(x0, t, c)

    rows["UNet forward"] = median_seconds(forward, repeats)
    if train:
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)

        def step():
            with autocast(precision):
                loss = training_loss(
                    lambda z, tt: net(z, tt, c),
                    schedule,
                    x0,
                    t=sample_timesteps(batch, 1000, g),
                    noise=torch.randn(x0.shape, generator=g),
                ).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        rows["UNet train step"] = median_seconds(step, repeats)
    return rows


def joint_rows(
    unet_cfg,
    diffusion,
    joint_cfg,
    precision: str,
    repeats: int,
    train: bool,
    sampling_steps: int,
    batch: int = 1,
    future: TriplaneShape = FUTURE,
    context: TriplaneShape = CONTEXT,
) -> dict[str, float]:
    model = build_joint_unet(unet_cfg, joint_cfg, {m: (future, context) for m in MODALITIES})
    schedule = build_schedule(diffusion)
    g = torch.Generator().manual_seed(0)
    x0 = {m: torch.rand(batch, future.channels, future.length, generator=g) * 2 - 1 for m in MODALITIES}
    c = {m: torch.rand(batch, context.channels, context.length, generator=g) * 2 - 1 for m in MODALITIES}
    t = torch.full((batch,), 500)
    rows = {}

    def forward():
        with torch.no_grad(), autocast(precision):
            model(x0, t, c)

    rows["joint forward"] = median_seconds(forward, repeats)
    if train:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)

        def step():
            tt, noise = draw_joint_noise(x0, 1000, g, same_noise=True)
            with autocast(precision):
                loss = joint_training_loss(lambda z, s: model(z, s, c), schedule, x0, t=tt, noise=noise).total
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        rows["joint train step"] = median_seconds(step, repeats)

    sampler = Sampler(
        schedule=schedule,
        prediction="eps",
        method="ddim",
        steps=sampling_steps,
        eta=1.0,
        clip_x0=True,
        rederive_eps=False,
        same_noise=True,
    )

    c = {m: v[:1] for m, v in c.items()}  # one chunk

    def sample():
        with torch.no_grad(), autocast(precision):
            sampler.sample(
                lambda z, s: model(z, s, c),
                {m: (1, future.channels, future.length) for m in MODALITIES},
                generator=torch.Generator().manual_seed(1),
            )

    per_run = median_seconds(sample, 1 if sampling_steps > 10 else repeats)
    rows["sampling, 8-frame chunk, 100 DDIM steps"] = per_run * 100 / sampling_steps
    return rows


def per_parameter(rows: dict[str, float], n_unet: int, n_joint: int, batch: int, joint_batch: int) -> list[str]:
    """The joint model's training speed per parameter against the stage-1 UNet's."""
    out = []
    for label, unit, scale in (
        ("steps/s x parameters", "M", (1, 1)),
        ("parameter-samples/s (x batch)", "M", (batch, joint_batch)),
    ):
        single = scale[0] * n_unet / rows["UNet train step"] / 1e6
        joint = scale[1] * n_joint / rows["joint train step"] / 1e6
        out.append(
            f"per parameter, {label}: joint {joint:.2f} {unit}, stage-1 {single:.2f} {unit}, ratio {joint / single:.2f}"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "both"],
        default="fp32",
        help="bf16 = torch.autocast on CPU (inference and training rows)",
    )
    parser.add_argument("--full-sampling", action="store_true", help="run all 100 DDIM steps instead of 5")
    parser.add_argument("--no-train", action="store_true", help="skip the training-step rows")
    parser.add_argument(
        "--config",
        choices=["paper", "default"],
        default="paper",
        help="paper: the paper's networks at batch 1; default: params.yaml's networks, latents of "
        "its first trained dataset and train_single.batch_size (the CPU pipeline)",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu = process CPU time; with --threads 1 it approximates an idle core on a busy machine",
    )
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.config == "paper":
        unet_cfg, diffusion, joint_cfg = paper_sections(args.params)
        future, context, batch, joint_batch = FUTURE, CONTEXT, 1, 1
    else:
        unet_cfg, diffusion, joint_cfg, future, context, batch, joint_batch = default_sections(args.params)
    with torch.device("meta"):
        n_unet = count_parameters(build_unet(unet_cfg, future, context))
        n_joint = count_parameters(build_joint_unet(unet_cfg, joint_cfg, {m: (future, context) for m in MODALITIES}))
    print(
        f"{args.config} config: torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, "
        f"latent {future.channels} x {future.length}, context {context.channels} x {context.length}, batch {batch} (joint {joint_batch}), "
        f"median of {args.repeats} after a warm-up"
    )
    print(f"parameters: stage-1 UNet {n_unet / 1e6:.2f} M, joint model (deep STCA) {n_joint / 1e6:.2f} M")
    steps = 100 if args.full_sampling else 5
    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    print(f"\n{'work':50s} {'precision':9s} {'seconds':>9s} {'per s':>7s}")
    for precision in precisions:
        rows = single_rows(unet_cfg, diffusion, precision, args.repeats, not args.no_train, batch, future, context)
        rows |= joint_rows(
            unet_cfg,
            diffusion,
            joint_cfg,
            precision,
            args.repeats,
            not args.no_train,
            steps,
            joint_batch,
            future,
            context,
        )
        for work, seconds in rows.items():
            note = " (est.)" if work.startswith("sampling") and steps != 100 else ""
            print(f"{work + note:50s} {precision:9s} {seconds:9.3f} {1 / seconds:7.2f}")
        if "joint train step" in rows:
            for line in per_parameter(rows, n_unet, n_joint, batch, joint_batch):
                print(line)


if __name__ == "__main__":
    main()
