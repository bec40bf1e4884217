"""Fréchet video distance: I3D features of 16-frame chunks and the Fréchet distance.

SyncVP protocol (docs/evaluation.md, "FVD"): every video is split along time with `torch.split`
semantics (30 frames -> frames 0-15 and 16-29; a shorter last chunk is kept), each chunk is
embedded separately and the chunk embeddings are stacked as separate samples, chunk-major
(all videos' first chunks, then all second chunks; the order does not change the distance).
For paper numbers the predicted set is GT context + predictions and the real set the GT video
(see `syncvp.metrics.protocol`).

The standard protocol (`fvd16`, the metric most video-generation papers report as FVD_16, e.g.
StyleGAN-V): one clip per video, its first `STANDARD_CLIP` = 16 frames (for a prediction: the
GT context followed by the predicted frames), one clip per trajectory on the predicted side;
the number of clips of each side is reported with the value, since FVD is biased upwards for
small sample counts. The real clips' features depend only on the dataset split, the clip
protocol and the I3D weights, so they are cached (`cached_features`).

Fréchet distance (TF-GAN formula, as PVDM/SyncVP):

    d = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr( sqrt( sqrt(S_1) S_2 sqrt(S_1) ) )

with unbiased covariances (1 / (N - 1)) and symmetric matrix square roots from an SVD, where
singular values below 1e-10 are left unsquared. `tr(sqrt(sqrt(S_1) S_2 sqrt(S_1)))` equals
`tr(sqrtm(S_1 S_2))`, the usual scipy formula. SyncVP computes it in float32 (`dtype=float32`
reproduces that); the default here is float64, which agrees with scipy's `sqrtm` in float64.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from syncvp.io.atomic import atomic_path
from syncvp.metrics.i3d import preprocess

CHUNK = 16
SQRT_EPS = 1e-10


STANDARD_CLIP = 16


def first_clip(videos: Tensor, frames: int = STANDARD_CLIP) -> Tensor:
    """The first `frames` frames of videos [B, C, T, H, W] (T >= frames, else ValueError)."""
    if videos.shape[2] < frames:
        raise ValueError(f"a {frames}-frame FVD clip needs videos of >= {frames} frames, got {videos.shape[2]}")
    return videos[:, :, :frames]


def cached_features(path: Path, key: str, compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
    """(features, whether they came from the cache): the array stored at `path` when its recorded
    `key` matches, else `compute()`, written atomically to `path` with the key."""
    path = Path(path)
    if path.is_file():
        with np.load(path) as data:
            if str(data["key"]) == key:
                return data["features"], True
    features = np.asarray(compute(), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, key=np.array(key), features=features)
    return features, False


def split_chunks(videos: Tensor, chunk: int = CHUNK) -> tuple[Tensor, ...]:
    """[B, C, T, H, W] -> chunks of at most `chunk` frames along T (torch.split semantics)."""
    return torch.split(videos, chunk, dim=2)


@torch.no_grad()
def video_features(
    extractor: Callable[[Tensor], Tensor],
    videos: Tensor,
    chunk: int = CHUNK,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
) -> Tensor:
    """I3D features of uint8 videos [B, C, T, H, W] (C = 3, or 1 replicated to 3).

    Each chunk of `chunk` frames is moved to `device`, preprocessed there
    (`syncvp.metrics.i3d.preprocess`) and embedded by `extractor` ([b, 3, t, 224, 224] in
    [-1, 1] -> [b, D]) in sub-batches of `batch_size` videos. Returns float32
    [n_chunks * B, D] on the CPU, chunk-major.
    """
    rows = []
    for part in split_chunks(videos, chunk):
        for start in range(0, part.shape[0], batch_size):
            clip = preprocess(part[start : start + batch_size].to(device))
            rows.append(extractor(clip).float().cpu())
    return torch.cat(rows)


def _sqrt_psd(mat: Tensor) -> Tensor:
    """Symmetric square root by SVD; singular values below SQRT_EPS are kept as they are."""
    u, s, vh = torch.linalg.svd(mat)
    s = torch.where(s < SQRT_EPS, s, torch.sqrt(s))
    return (u * s) @ vh


def _moments(x: Tensor) -> tuple[Tensor, Tensor]:
    centred = x - x.mean(dim=0, keepdim=True)
    return x.mean(dim=0), centred.T @ centred / (x.shape[0] - 1)


def frechet_distance(a: Tensor | np.ndarray, b: Tensor | np.ndarray, dtype: torch.dtype = torch.float64) -> float:
    """Fréchet distance between feature sets a [N, D] and b [M, D] (N, M >= 2), computed in `dtype`."""
    a, b = torch.as_tensor(a).to(dtype), torch.as_tensor(b).to(dtype)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"frechet_distance needs [N, D] and [M, D], got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(a.shape[0], b.shape[0]) < 2:
        raise ValueError(f"frechet_distance needs at least 2 samples per set, got {a.shape[0]} and {b.shape[0]}")
    mu_a, cov_a = _moments(a)
    mu_b, cov_b = _moments(b)
    root_a = _sqrt_psd(cov_a)
    cross = torch.trace(_sqrt_psd(root_a @ cov_b @ root_a))
    return float(((mu_a - mu_b) ** 2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross)


class FeatureAccumulator:
    """Real and predicted features collected batch by batch, keyed (by sortable keys such as the
    batch index) so a resumed evaluation can add cached batches in any order and still stack
    them in key order.

    The real set is added once per batch (GT features do not depend on the trajectory); the
    predicted set may hold several trajectories per batch (all of them enter the distance).
    """

    def __init__(self) -> None:
        self.real: dict = {}
        self.fake: dict = {}

    def add(self, key, real: np.ndarray | Tensor | None = None, fake: np.ndarray | Tensor | None = None) -> None:
        """Add the features of batch `key` ([n, D] each); a key may be added once per set."""
        for store, value, name in ((self.real, real, "real"), (self.fake, fake, "predicted")):
            if value is None:
                continue
            if key in store:
                raise ValueError(f"{name} features of batch {key!r} were already added")
            store[key] = np.asarray(value, dtype=np.float32)

    def stacked(self) -> tuple[np.ndarray, np.ndarray]:
        """(real [N, D], predicted [M, D]) in key order."""
        if not self.real or not self.fake:
            raise ValueError("FVD needs real and predicted features; none were added for one of them")
        order = sorted(self.real)
        if sorted(self.fake) != order:
            raise ValueError(f"real and predicted features cover different batches: {order} vs {sorted(self.fake)}")
        return (np.concatenate([self.real[k] for k in order]), np.concatenate([self.fake[k] for k in order]))

    def distance(self, dtype: torch.dtype = torch.float64) -> float:
        """Fréchet distance of the predicted set to the real set."""
        real, fake = self.stacked()
        return frechet_distance(fake, real, dtype=dtype)
