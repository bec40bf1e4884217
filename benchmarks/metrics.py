"""Speed of the evaluation metrics on one paper-sized test batch (hand-run, prints a table).

    python -m benchmarks.metrics [--videos 16] [--frames 28] [--size 128] [--repeats 3]

Rows: SSIM as a grouped 2-D convolution (the straightforward form) vs `frames.ssim` (banded
matrices, same values); `score_batch` with the weight-free metrics (SSIM, L2, PSNR) in both
modes; one I3D forward of a 16-frame chunk per video (random weights: the speed does not depend
on them). Median of `--repeats` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from syncvp.metrics.i3d import InceptionI3d, preprocess
from syncvp.metrics.protocol import score_batch
from syncvp.metrics.ssim_psnr import C1, C2, gaussian_window, ssim


def conv_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    w = gaussian_window(dtype=x.dtype).expand(c, 1, 11, 11)

    def blur(t):
        return F.conv2d(t, w, padding=5, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / ((mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2))
    return s.mean(dim=(1, 2, 3))


def timed(fn, repeats: int) -> float:
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--frames", type=int, default=28)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    shape = (args.videos, 3, 2 + args.frames, args.size, args.size)
    gt = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
    pred = gt[:, :, 2:].float() / 127.5 - 1 + 0.1 * torch.randn(gt[:, :, 2:].shape, generator=gen)
    frames = gt[:, :, 2:].transpose(1, 2).reshape(-1, 3, args.size, args.size).float() / 255
    other = (frames + 0.05).clamp(0, 1)
    rows = [
        ("SSIM, grouped 2-D conv (float32)", timed(lambda: conv_ssim(frames, other), args.repeats)),
        ("SSIM, frames.ssim banded (float32)", timed(lambda: ssim(frames, other), args.repeats)),
        (
            "score_batch ssim+l2+psnr, both modes",
            timed(
                lambda: score_batch(
                    {"rgb": gt}, [{"rgb": pred}], context_frames=2, metrics={"rgb": ["ssim", "l2", "psnr"]}
                ),
                args.repeats,
            ),
        ),
    ]
    i3d = InceptionI3d().eval()
    clip = preprocess(gt[:, :, :16])
    with torch.no_grad():
        rows.append((f"I3D forward, {args.videos} x 16 frames", timed(lambda: i3d(clip), args.repeats)))
    print(
        f"batch: {args.videos} videos x {args.frames} predicted frames x 3 x {args.size}^2, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{'work':42s} {'seconds':>9s}")
    for name, seconds in rows:
        print(f"{name:42s} {seconds:9.2f}")


if __name__ == "__main__":
    main()
