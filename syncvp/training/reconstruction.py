"""Reconstruction quality of a video autoencoder on held-out clips: PSNR, SSIM, L1, and a PNG
grid of inputs over reconstructions.

PSNR and SSIM follow the paper's definitions (`syncvp.metrics.ssim_psnr`) on the [0, 1] scale
(x / 2 + 0.5 of model space): PSNR per clip over all its values, SSIM per frame then averaged
over frames; both then averaged over clips. The float reconstruction is used (not quantised).

Image modalities also get the scores of SyncVP's autoencoder evaluation (`paper_reconstruction_metrics`,
keys `psnr_paper` and `ssim_paper`): the reconstruction truncated to uint8 as the paper's
`.type(torch.uint8)`, SSIM on both tensors min-max normalised over the whole batch, PSNR on the float
reconstruction, each a mean of per-batch means; a gray modality of a 3-channel network
(`gray_to_rgb`) is scored at the network's 3 channels against the input replicated.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from syncvp import viz
from syncvp.data.dataset import ClipDataset
from syncvp.data.store import ModalityInfo
from syncvp.io.model_space import model_to_field, model_to_image
from syncvp.metrics.images import frames_of, ground_truth, normalise, quantise
from syncvp.metrics.ssim_psnr import psnr, ssim
from syncvp.models.autoencoder import TriplaneAutoencoder

Reconstruct = Callable[[Tensor], Tensor]  # [B, C, T, H, W] -> same, both in [-1, 1]


def held_out_clips(store: str | Path, modality: str, frames: int, count: int, seed: int) -> Tensor:
    """A fixed set of `count` clips [count, C, T, H, W]: video i % V, window drawn from the
    (seed, i // V, i % V) stream, so several windows per video when count > V."""
    data = ClipDataset(store, [modality], frames, seed=seed, window="random")
    videos = data.info.videos
    try:
        return torch.stack([data[(i // videos, i % videos)][modality] for i in range(count)])
    finally:
        data.reader.close()  # no lingering file handle (see BatchStream.close)


@torch.no_grad()
def reconstruct_all(reconstruct: Reconstruct, clips: Tensor, device: torch.device, batch_size: int) -> Tensor:
    """Reconstruct clips in batches on `device`; the result is float32 on the CPU."""
    out = [reconstruct(clips[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(clips), batch_size)]
    return torch.cat(out)


def reconstruction_metrics(inputs: Tensor, recons: Tensor) -> dict[str, float]:
    """Mean PSNR (dB), SSIM and L1 (model space) of [N, C, T, H, W] clips in [-1, 1]."""
    x, y = inputs.double() / 2 + 0.5, recons.double() / 2 + 0.5
    n, c, t, h, w = x.shape
    frames_x = x.transpose(1, 2).reshape(n * t, c, h, w)
    frames_y = y.transpose(1, 2).reshape(n * t, c, h, w)
    return {
        "psnr": float(psnr(x, y).mean()),
        "ssim": float(ssim(frames_x, frames_y).view(n, t).mean(dim=1).mean()),
        "l1": float((inputs.double() - recons.double()).abs().mean()),
    }


def network_view(model: TriplaneAutoencoder) -> TriplaneAutoencoder:
    """`model` decoding at its network's channels (3 for a gray modality with `gray_to_rgb`, not
    averaged), sharing its parameters; `model` itself otherwise. (The rollout has the same view,
    `syncvp.prediction.rollout.network_view`: training does not import prediction.)"""
    if model.spec.net_channels == model.spec.channels:
        return model
    view = copy.copy(model)  # a shallow copy: the same submodules and parameters, its own `spec`
    view.spec = dataclasses.replace(model.spec, channels=model.spec.net_channels)
    return view


def paper_reconstruction_metrics(inputs: Tensor, recons: Tensor, batch_size: int) -> dict[str, float]:
    """SyncVP's autoencoder scores of image clips [N, C, T, H, W] in [-1, 1] (`recons` may have 3
    channels for 1-channel inputs), over batches of `batch_size` clips in order (see the module doc)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ssims, psnrs = [], []
    for start in range(0, len(inputs), batch_size):
        x, y = inputs[start : start + batch_size], recons[start : start + batch_size]
        if x.shape[1] != y.shape[1]:
            x = x.expand(-1, y.shape[1], -1, -1, -1)
        n, _, t = y.shape[:3]
        gt, rec = ground_truth(x), quantise(y, "truncate")
        per_frame = ssim(frames_of(normalise(rec, "batch")).float(), frames_of(normalise(gt, "batch")).float())
        ssims.append(float(per_frame.double().view(n, t).mean(dim=1).mean()))
        psnrs.append(float(psnr(x.double() / 2 + 0.5, y.double() / 2 + 0.5).mean()))
    return {"psnr_paper": float(np.mean(psnrs)), "ssim_paper": float(np.mean(ssims))}


def _displayable(clip: Tensor, info: ModalityInfo) -> np.ndarray:
    """[C, T, H, W] model space -> uint8 [T, H, W, 3]."""
    x = clip.permute(1, 2, 3, 0).numpy()  # [T, H, W, C]
    if info.kind == "image":
        return viz.to_rgb(model_to_image(x), "image")
    lo, hi = float(info.attrs["norm_min"]), float(info.attrs["norm_max"])
    return viz.to_rgb(model_to_field(x, lo, hi), "field", lo, hi)


def reconstruction_grid(
    inputs: Tensor, recons: Tensor, info: ModalityInfo, clips: int = 4, size: int = 96
) -> np.ndarray:
    """An image with, for each of the first `clips` clips, a row of input frames above a row of
    reconstructed frames (uint8 [H, W, 3])."""
    rows = []
    for i in range(min(clips, len(inputs))):
        rows += [_displayable(inputs[i], info), _displayable(recons[i], info)]
    scale = max(1, size // max(inputs.shape[-2:]))
    return viz.grid(rows, pad=2, scale=scale)
