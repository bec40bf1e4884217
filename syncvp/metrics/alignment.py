"""Cross-modal alignment: do the edges of one modality sit where the other modality has edges,
more often than edges placed at random within their rows would?

For a pair of image modalities (a, b) of one video (e.g. rgb and depth), per predicted frame:

1. gradient magnitude |G| = sqrt(Gx^2 + Gy^2) with the 3 x 3 Sobel kernels, on the uint8 frame
   taken as float in [0, 255] (3-channel frames as luma 0.299 R + 0.587 G + 0.114 B), with
   replicated borders (a flat frame has no gradient, not even at its border);
2. edges of b: pixels with |G_b| >= the 90th percentile of |G_b| over the frame AND
   |G_b| > EDGE_FLOOR; edges of a: likewise with the 80th percentile (its top 20 %);
3. near(a) = dilate(edges(a)), a 3 x 3 dilation (within 1 pixel, diagonals included);
   hit rate h = |edges(b) AND near(a)| / |edges(b)|, the share of b's edges next to an edge of a;
   chance c = the hit rate of b's edges if each kept its row but sat at a random column:
   c = sum_r n_b(r) cover_a(r) / sum_r n_b(r), with n_b(r) the edges of b in row r and
   cover_a(r) the share of row r inside near(a);
4. alignment = (h - c) / (1 - c), Cohen's-kappa style: 1 when every edge of b is next to an
   edge of a, 0 when they are no closer than chance, negative when they avoid a's edges.
   A frame without edges of b, or whose b edges all lie in rows that near(a) covers whole, is
   NaN (skipped by means).

The chance correction matters: at 32 px, the dilated top 20 % of RGB gradients covers about
half of the frame, so the raw hit rate of a depth map unrelated to the RGB is about 0.5, not 0.
It is taken per row because in camera footage the density of edges depends on the height in
the frame (sky, horizon, a textured ground near the camera): a depth map with no relation to
the RGB but with its edges in the ground rows, where the RGB edges are dense, would otherwise
score well above 0 (the unconditional depth of a stage-1 model did: 0.17 on the synthetic test
split against about 0 now). Per row, only where within a row the edges sit counts.
The percentiles make the value invariant to each modality's intensity scale (as long as edges
stay above the floor); EDGE_FLOOR = 4 is the magnitude of a one-level step, so flat frames and
one-level quantisation ripples give no edges. Per video, the value is the mean over its frames
that have one (NaN when none has).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from syncvp.metrics.images import frames_of

B_QUANTILE, A_QUANTILE = 0.9, 0.8
EDGE_FLOOR = 4.0  # Sobel magnitude of a one-level step (in 0-255 units)
LUMA = (0.299, 0.587, 0.114)
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)


def pair_key(a: str, b: str) -> str:
    """The modality key of a pair in reports: "<a>+<b>"."""
    return f"{a}+{b}"


def gradient_magnitude(frames: Tensor) -> Tensor:
    """uint8 frames [F, C, H, W] (C = 1, or 3 taken as luma) -> Sobel magnitude [F, H, W], float64."""
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[1] not in (1, 3):
        raise ValueError(f"gradient_magnitude needs uint8 [F, 1 or 3, H, W], got {frames.dtype} {tuple(frames.shape)}")
    x = frames.double()
    if x.shape[1] == 3:
        x = sum(w * x[:, i : i + 1] for i, w in enumerate(LUMA))
    x = F.pad(x, (1, 1, 1, 1), mode="replicate")
    kernels = torch.stack([_SOBEL_X, _SOBEL_X.T])[:, None]  # [2, 1, 3, 3]: d/dx and d/dy
    g = F.conv2d(x, kernels)
    return g.pow(2).sum(dim=1).sqrt()


def edges(magnitude: Tensor, quantile: float, floor: float = EDGE_FLOOR) -> Tensor:
    """Per frame, pixels with magnitude >= the frame's `quantile` and > `floor`: [F, H, W] -> bool."""
    flat = magnitude.reshape(magnitude.shape[0], -1).cpu().numpy()
    level = torch.from_numpy(np.quantile(flat, quantile, axis=1)).reshape(-1, 1, 1)
    return (magnitude >= level) & (magnitude > floor)


def alignment_frames(a: Tensor, b: Tensor) -> Tensor:
    """Chance-corrected alignment of b's edges to a's edges per frame: uint8 [F, C, H, W] pairs -> [F]
    float64 in [-1, 1] (NaN: no edges of b, or all of them in rows that a's dilated edges cover)."""
    if a.shape[0] != b.shape[0] or a.shape[2:] != b.shape[2:]:
        raise ValueError(
            f"alignment needs frames of the same count and size, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return alignment_of_edges(edges(gradient_magnitude(a), A_QUANTILE), edges(gradient_magnitude(b), B_QUANTILE))


def alignment_of_edges(edge_a: Tensor, edge_b: Tensor) -> Tensor:
    """Steps 3-4 of the module docstring on boolean edge maps [F, H, W] -> [F] float64."""
    near_a = F.max_pool2d(edge_a[:, None].double(), 3, stride=1, padding=1)[:, 0] > 0
    hits = (edge_b & near_a).sum(dim=(1, 2)).double()
    per_row = edge_b.sum(dim=2).double()  # [F, H]: edges of b in each row
    count = per_row.sum(dim=1)
    chance = (per_row * near_a.double().mean(dim=2)).sum(dim=1) / count.clamp(min=1)
    rate = hits / count.clamp(min=1)
    kappa = (rate - chance) / (1 - chance).clamp(min=1e-12)
    return torch.where((count > 0) & (chance < 1), kappa, torch.full_like(count, float("nan")))


def alignment(a: Tensor, b: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """uint8 videos [B, C, T, H, W] of modalities a and b -> (per video [B], per frame [B, T]), float64.

    Per-video values are the mean over frames that have edges of b (NaN when none has).
    """
    if a.ndim != 5 or b.ndim != 5 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(
            f"alignment needs [B, C, T, H, W] videos of one batch, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    frame = alignment_frames(frames_of(a), frames_of(b)).reshape(a.shape[0], a.shape[2]).numpy()
    return nanmean(frame, axis=1), frame


def nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """np.nanmean without the warning for all-NaN slices (they stay NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nanmean(x, axis=axis)
