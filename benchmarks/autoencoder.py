"""Speed and memory of the projected autoencoder at the paper configuration.

    python -m benchmarks.autoencoder [--steps 3] [--warmup 1] [--batch 1] [--device cpu] [--threads 0]

Builds the Cityscapes autoencoders (128x128, width 192, depth 8, 8 heads x 64, P = 4, C' = 4,
3 channels, PVDM axis-token layout) for 8 and 2 frames, prints their parameter counts (the
authors' modules: 23.02 M and 23.01 M), then times training steps (forward, L1 loss, backward,
AdamW) of the 8-frame one and reports steps/s and the peak memory (process RSS on CPU, allocator
peak on CUDA). Timings on a shared machine are noisy: run it on an idle one and say which.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time

import torch

from syncvp.models.autoencoder import AutoencoderSpec, TriplaneAutoencoder, count_parameters

PAPER = dict(
    channels=3,
    resolution=(128, 128),
    width=192,
    depth=8,
    heads=8,
    head_dim=64,
    ff_mult=4,
    axis_depth=4,
    axis_heads=4,
    axis_head_dim=24,
    axis_mlp=512,
    patch_size=4,
    latent_channels=4,
    gray_to_rgb=False,
    axis_token="pvdm",
)


def rss_gib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def time_steps(model: TriplaneAutoencoder, batch: int, steps: int, warmup: int, device: torch.device) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.5, 0.9))
    spec = model.spec
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, spec.channels, spec.frames, *spec.resolution, generator=g) * 2 - 1).to(device)
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        recon, _ = model(x)
        loss = (recon - x).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.autoencoder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {device}"
    )
    print(f"{'autoencoder':<22}{'parameters':>14}{'latent':>12}")
    models = {}
    for frames in (8, 2):
        torch.manual_seed(0)
        model = TriplaneAutoencoder(AutoencoderSpec.from_dict({**PAPER, "frames": frames}))
        shape = model.latent_shape
        print(f"{f'{frames} frames, 128 px':<22}{count_parameters(model):>14,}{f'{shape.channels}x{shape.length}':>12}")
        models[frames] = model
    del models[2]
    model = models[8].to(device)
    base = rss_gib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = time_steps(model, args.batch, args.steps, args.warmup, device)
    median = statistics.median(times)
    print(
        f"\ntraining step (forward + L1 + backward + AdamW), batch {args.batch}, 8 x 128 x 128, "
        f"{args.steps} timed after {args.warmup} warm-up:"
    )
    print(f"  per step: median {median:.3f} s (min {min(times):.3f}, max {max(times):.3f}) -> {1 / median:.3f} steps/s")
    if device.type == "cuda":
        print(f"  peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    else:
        print(f"  peak process RSS: {rss_gib():.2f} GiB (after building both models: {base:.2f} GiB)")


if __name__ == "__main__":
    main()
