"""SSIM and PSNR exactly as the SyncVP/PVDM evaluation computes them (docs/evaluation.md, "SSIM and PSNR").

SSIM: 11 x 11 Gaussian window (sigma 1.5, the 1-D kernel normalised to sum 1), applied per
channel with zero padding 5, C1 = 0.01^2, C2 = 0.03^2 (data range 1), variances not clamped,
the map averaged over C, H, W including the borders. Common libraries (torchmetrics,
scikit-image, pytorch-msssim) differ from this by 0.02-0.03.
PSNR: -10 log10(MSE) on the [0, 1] scale, per sample over all its values.
"""

from __future__ import annotations

import torch
from torch import Tensor

WINDOW, SIGMA, C1, C2 = 11, 1.5, 0.01**2, 0.03**2


def gaussian_1d(size: int = WINDOW, sigma: float = SIGMA, dtype=torch.float64) -> Tensor:
    """The 1-D Gaussian kernel [size], normalised to sum 1."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA, dtype=torch.float64) -> Tensor:
    """The separable Gaussian kernel as a [size, size] matrix summing to 1."""
    g = gaussian_1d(size, sigma, dtype)
    return g[:, None] * g[None, :]


def blur_matrix(n: int, g: Tensor) -> Tensor:
    """[n, n] banded matrix M with (M v)[i] = sum_k g[k] v[i + k - r] over in-range indices only,
    i.e. a 1-D "same" convolution with zero padding r = len(g) // 2."""
    r = g.numel() // 2
    offset = torch.arange(n)[None, :] - torch.arange(n)[:, None] + r
    inside = (offset >= 0) & (offset < g.numel())
    return torch.where(inside, g[offset.clamp(0, g.numel() - 1)], torch.zeros((), dtype=g.dtype))


def ssim(x: Tensor, y: Tensor, chunk: int = 64) -> Tensor:
    """Per-image SSIM of [N, C, H, W] images in [0, 1] -> [N].

    The zero-padded 11 x 11 Gaussian filter is applied as two banded matrix products
    (B_H @ img @ B_W^T), the same values as the 2-D convolution but fast on CPU; images are
    processed `chunk` at a time to bound memory.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(
            f"ssim needs two [N, C, H, W] tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    x, y = x.to(dtype), y.to(dtype)
    g = gaussian_1d(dtype=dtype).to(x.device)
    rows, cols = blur_matrix(x.shape[2], g).to(x.device), blur_matrix(x.shape[3], g).to(x.device).T
    out = []
    for start in range(0, x.shape[0], chunk):
        a, b = x[start : start + chunk], y[start : start + chunk]
        mu_x, mu_y, e_xx, e_yy, e_xy = rows @ torch.stack([a, b, a * a, b * b, a * b]) @ cols
        var_x, var_y, cov = e_xx - mu_x**2, e_yy - mu_y**2, e_xy - mu_x * mu_y
        num = (2 * mu_x * mu_y + C1) * (2 * cov + C2)
        den = (mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2)
        out.append((num / den).mean(dim=(1, 2, 3)))
    return torch.cat(out)


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-sample PSNR in dB of [N, ...] tensors: -10 log10(mean((x - y)^2) / range^2)."""
    mse = ((x.double() - y.double()) ** 2).flatten(1).mean(dim=1)
    return 10 * torch.log10(data_range**2 / mse)
