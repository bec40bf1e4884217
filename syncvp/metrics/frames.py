"""SSIM and PSNR exactly as the SyncVP/PVDM evaluation computes them (EVAL_AND_DEPTH.md B5).

SSIM: 11 x 11 Gaussian window (sigma 1.5, the 1-D kernel normalised to sum 1), applied per
channel with zero padding 5, C1 = 0.01^2, C2 = 0.03^2 (data range 1), variances not clamped,
the map averaged over C, H, W including the borders. Common libraries (torchmetrics,
scikit-image, pytorch-msssim) differ from this by 0.02-0.03.
PSNR: -10 log10(MSE) on the [0, 1] scale, per sample over all its values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

WINDOW, SIGMA, C1, C2 = 11, 1.5, 0.01 ** 2, 0.03 ** 2


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA, dtype=torch.float64) -> Tensor:
    """The separable Gaussian kernel as a [size, size] matrix summing to 1."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Per-image SSIM of [N, C, H, W] images in [0, 1] -> [N]."""
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim needs two [N, C, H, W] tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    c = x.shape[1]
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    x, y = x.to(dtype), y.to(dtype)
    w = gaussian_window(dtype=dtype).to(x.device).expand(c, 1, WINDOW, WINDOW)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, w, padding=WINDOW // 2, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + C1) * (2 * cov + C2)
    den = (mu_x ** 2 + mu_y ** 2 + C1) * (var_x + var_y + C2)
    return (num / den).mean(dim=(1, 2, 3))


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-sample PSNR in dB of [N, ...] tensors: -10 log10(mean((x - y)^2) / range^2)."""
    mse = ((x.double() - y.double()) ** 2).flatten(1).mean(dim=1)
    return 10 * torch.log10(data_range ** 2 / mse)
