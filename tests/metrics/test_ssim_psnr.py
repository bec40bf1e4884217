"""SSIM against an independent pure-numpy implementation of the paper's definition and against
the 2-D convolution form; PSNR."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from syncvp.metrics.ssim_psnr import C1, C2, gaussian_window, psnr, ssim


def numpy_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Direct loops: zero-padded 11x11 Gaussian (sigma 1.5) statistics per pixel and channel."""
    r = np.arange(11) - 5
    g = np.exp(-(r**2) / (2 * 1.5**2))
    g /= g.sum()
    win = np.outer(g, g)
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for c in range(x.shape[0]):
        a, b = np.pad(x[c], 5), np.pad(y[c], 5)
        for i in range(x.shape[1]):
            for j in range(x.shape[2]):
                pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
                ma, mb = (win * pa).sum(), (win * pb).sum()
                va = (win * pa * pa).sum() - ma**2
                vb = (win * pb * pb).sum() - mb**2
                cov = (win * pa * pb).sum() - ma * mb
                vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_matches_direct_definition():
    rng = np.random.default_rng(0)
    x = rng.random((3, 2, 14, 13))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    got = ssim(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    want = [numpy_ssim(x[i], y[i]) for i in range(3)]
    np.testing.assert_allclose(got, want, atol=1e-6)
    got32 = ssim(torch.from_numpy(x).float(), torch.from_numpy(y).float()).numpy()
    np.testing.assert_allclose(got32, want, atol=1e-5)


def test_ssim_identity_and_bounds():
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    assert (ssim(x, torch.rand(2, 3, 16, 16)) < 0.5).all()


def test_psnr_closed_form():
    x = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    y = torch.full((2, 3, 4, 4), 0.1, dtype=torch.float64)
    torch.testing.assert_close(psnr(x, y), torch.full((2,), 20.0, dtype=torch.float64))
    y[1] = 0.01
    assert abs(float(psnr(x, y)[1]) - 40.0) < 1e-9


def conv_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The 2-D form: one zero-padded 11x11 Gaussian convolution per channel."""
    c = x.shape[1]
    w = gaussian_window(dtype=x.dtype).expand(c, 1, 11, 11)

    def blur(t):
        return F.conv2d(t, w, padding=5, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / ((mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2))
    return s.mean(dim=(1, 2, 3))


def test_banded_filter_equals_the_2d_convolution_and_chunks_do_not_matter():
    gen = torch.Generator().manual_seed(1)
    for shape in [(5, 3, 17, 12), (3, 1, 7, 5), (2, 2, 40, 33)]:
        x = torch.rand(shape, dtype=torch.float64, generator=gen)
        y = (x + 0.2 * torch.randn(shape, dtype=torch.float64, generator=gen)).clamp(0, 1)
        torch.testing.assert_close(ssim(x, y), conv_ssim(x, y), rtol=0, atol=1e-12)
        torch.testing.assert_close(ssim(x, y, chunk=2), ssim(x, y), rtol=0, atol=1e-15)
