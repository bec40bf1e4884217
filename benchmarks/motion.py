"""Does a model predict motion, or only blur? (hand-run, about a minute on a 2-core CPU)

    python -m benchmarks.motion [--params params.yaml] [--dataset synthetic] [--modality rgb]
                                [--model models/synthetic-rgb/diffusion.pt] [--split val] [--stride 4]

Two measurements on every window (stride `--stride`) of a split, after `make repro`:

1. **What the conditioning keeps of the motion.** Through the future autoencoder: the latent
   distance between the held context clip (frame 1, then frame 2 repeated) and frame 2 held still,
   against the distance between the two frames held still; and, decoded, the size and direction
   (cosine) of the frame-to-frame change each keeps, against the true change.
2. **One chunk** (`context_frames` observed -> `future_frames` predicted) by a stage-1 model, scored
   by PSNR and SSIM (per frame, [0, 1] scale) next to copy-last, a blur of the last frame that
   grows with the lead frame (Gaussian sigma `--blur` px per frame: what a model that only learnt
   its uncertainty would give), the last frame carried along its optical flow (the extrapolation
   `diffusion.context_extrapolation: flow` conditions on), and the autoencoder ceiling; and the cosine between the predicted
   and the true change from the last observed frame at the chunk's last frame (0 for copy-last).
   A model that beats the growing blur on both has learnt some of the motion.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from syncvp.config import RolePair, load_params
from syncvp.data.dataset import ClipDataset
from syncvp.metrics.ssim_psnr import psnr, ssim
from syncvp.models.autoencoder import load_autoencoder
from syncvp.models.context import flow_extrapolate, hold_last
from syncvp.prediction.load import load_predictor


def frame_scores(pred: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """Mean per-frame PSNR (dB) and SSIM of [N, C, T, H, W] clips in [-1, 1]."""
    a, b = pred.double() / 2 + 0.5, truth.double() / 2 + 0.5
    n, c, t, h, w = a.shape
    fa, fb = a.transpose(1, 2).reshape(n * t, c, h, w), b.transpose(1, 2).reshape(n * t, c, h, w)
    return float(psnr(fa, fb).mean()), float(ssim(fa, fb).mean())


def change_cosine(pred: torch.Tensor, truth: torch.Tensor, last: torch.Tensor) -> float:
    """Mean cosine between pred - last and truth - last, per clip ([N, C, H, W] each)."""
    return float(F.cosine_similarity((pred - last).flatten(1).double(), (truth - last).flatten(1).double()).mean())


def growing_blur(last: torch.Tensor, frames: int, sigma_per_frame: float) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, frames, H, W]: frame k is the last frame blurred with sigma (k + 1) s."""
    x = last.numpy()
    out = [
        gaussian_filter(x, sigma=(0, 0, sigma_per_frame * (k + 1), sigma_per_frame * (k + 1))) for k in range(frames)
    ]
    return torch.from_numpy(np.stack(out, axis=2))


@torch.no_grad()
def batched(fn, x: torch.Tensor, size: int = 16) -> torch.Tensor:
    return torch.cat([fn(x[i : i + size]) for i in range(0, len(x), size)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--modality", default="rgb")
    parser.add_argument(
        "--model", default=None, help="stage-1 model file (default: models/<dataset>-<modality>/diffusion.pt)"
    )
    parser.add_argument("--split", default="val")
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--blur", type=float, default=0.25, help="sigma of the growing blur, px per lead frame")
    args = parser.parse_args()
    params = load_params(args.params)
    ds, m = params.datasets[args.dataset], args.modality
    ae_path = params.paths.autoencoder(args.dataset, m, "future").model
    model = args.model or params.paths.single(args.dataset, m).model
    ae = load_autoencoder(ae_path)
    tc, tf = ds.context_frames, ds.future_frames
    if tc < 2:
        raise SystemExit(f"dataset {args.dataset!r} observes {tc} frame: there is no observed motion to measure")
    data = ClipDataset(
        params.paths.store(args.dataset, args.split), [m], tc + tf, seed=0, window="all", stride=args.stride
    )
    clips = torch.stack([data[i][m] for i in range(len(data))])
    data.reader.close()
    prev, last, truth = clips[:, :, tc - 2], clips[:, :, tc - 1], clips[:, :, tc : tc + tf]
    print(
        f"{args.dataset} {m}, {args.split}: {len(clips)} windows (stride {args.stride}), "
        f"{tc} observed -> {tf} predicted frames"
    )

    still = lambda frame: batched(lambda f: ae.encode(f[:, :, None].expand(-1, -1, tf, -1, -1)), frame)  # noqa: E731
    z_prev, z_last = still(prev), still(last)
    z_held = batched(lambda c: ae.encode(hold_last(c, tf)), clips[:, :, :tc])
    rms = lambda x: float(x.double().pow(2).mean().sqrt())  # noqa: E731
    print(
        f"latent distance (rms): held context to last-still {rms(z_held - z_last):.4f}, "
        f"previous-still to last-still {rms(z_last - z_prev):.4f}"
    )
    held_rec = batched(ae.decode, z_held)
    true_change = (last - prev).flatten(1).double()
    for name, change in (
        ("held context", held_rec[:, :, tc - 1] - held_rec[:, :, tc - 2]),
        ("two stills", batched(ae.decode, z_last)[:, :, 0] - batched(ae.decode, z_prev)[:, :, 0]),
    ):
        cos = float(F.cosine_similarity(change.flatten(1).double(), true_change).mean())
        print(
            f"decoded one-frame change, {name}: rms {rms(change):.4f} (true {rms(true_change):.4f}), cosine {cos:.3f}"
        )

    predictor = load_predictor(model, {m: RolePair(context=ae_path, future=ae_path)}, params.sampling)
    generator = torch.Generator().manual_seed(0)
    pred = batched(lambda c: predictor.predict_chunk({m: c}, frozenset([m]), generator)[m], clips[:, :, :tc]).clamp(
        -1, 1
    )
    rows = [
        ("model", pred),
        ("copy-last", last[:, :, None].expand_as(truth)),
        (f"growing blur ({args.blur} px/frame)", growing_blur(last, tf, args.blur)),
        ("flow extrapolation", flow_extrapolate(clips[:, :, :tc], tf).clamp(-1, 1)),
        (
            f"flow extrapolation, blurred {params.diffusion.extrapolation_blur} px/frame",
            flow_extrapolate(clips[:, :, :tc], tf, params.diffusion.extrapolation_blur).clamp(-1, 1),
        ),
        ("autoencoder ceiling", batched(lambda x: ae.decode(ae.encode(x)), truth).clamp(-1, 1)),
    ]
    print(f"\n| one chunk ({model}) | PSNR | SSIM | cosine of change (frame {tf}) |\n| --- | --- | --- | --- |")
    for name, video in rows:
        p, s = frame_scores(video, truth)
        cos = change_cosine(video[:, :, -1].float(), truth[:, :, -1], last)
        print(f"| {name} | {p:.2f} | {s:.3f} | {cos:.3f} |")


if __name__ == "__main__":
    main()
