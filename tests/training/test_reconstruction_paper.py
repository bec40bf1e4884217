"""The paper's autoencoder scores: truncated uint8 reconstructions, batch min-max SSIM, float PSNR,
means of per-batch means, and 3-channel reconstructions of a gray modality (`network_view`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from syncvp.models.autoencoder import TriplaneAutoencoder
from syncvp.training.reconstruction import network_view, paper_reconstruction_metrics, reconstruction_metrics
from tests.prediction.conftest import autoencoder


def clips(seed: int, n: int = 4, c: int = 3, lo: int = 10, hi: int = 240) -> torch.Tensor:
    """Model-space clips on uint8 levels."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi, (n, c, 3, 16, 16), generator=gen).float() / 127.5 - 1


def test_a_reconstruction_0_6_levels_too_bright_truncates_back_to_the_input():
    x = clips(0)
    y = x + 0.6 / 127.5  # (1 + y) * 127.5 = k + 0.6: the paper's cast gives k, rounding k + 1
    paper = paper_reconstruction_metrics(x, y, batch_size=2)
    assert paper["ssim_paper"] == pytest.approx(1.0, abs=1e-6)
    assert reconstruction_metrics(x, y)["ssim"] < 1 - 1e-6
    # PSNR is on the float reconstruction: 20 log10(255 / 0.6)
    assert paper["psnr_paper"] == pytest.approx(20 * np.log10(255 / 0.6), abs=1e-3)


def test_batch_min_max_and_the_mean_of_batch_means():
    x = clips(1, n=3)
    x[2] = (x[2] + 1) / 2 - 1  # a darker last clip changes its batch's range
    y = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    each = [paper_reconstruction_metrics(x[i : i + 1], y[i : i + 1], batch_size=1) for i in range(3)]
    ones = paper_reconstruction_metrics(x, y, batch_size=1)
    for key in ("ssim_paper", "psnr_paper"):
        assert ones[key] == pytest.approx(np.mean([e[key] for e in each]), abs=1e-12)
    pairs = paper_reconstruction_metrics(x, y, batch_size=2)  # batches [0, 1] and [2]: the short one weighs 1/2
    first = paper_reconstruction_metrics(x[:2], y[:2], batch_size=2)
    assert pairs["ssim_paper"] == pytest.approx((first["ssim_paper"] + each[2]["ssim_paper"]) / 2, abs=1e-12)
    assert pairs["ssim_paper"] != pytest.approx(ones["ssim_paper"], abs=1e-6)  # min-max over the batch couples clips


def test_three_channel_reconstruction_of_a_gray_modality():
    x = clips(3, c=1)
    y = (x + 0.03).clamp(-1, 1)
    same = paper_reconstruction_metrics(x, y.expand(-1, 3, -1, -1, -1), batch_size=2)
    one = paper_reconstruction_metrics(x, y, batch_size=2)
    for key in ("ssim_paper", "psnr_paper"):
        assert same[key] == pytest.approx(one[key], abs=1e-9)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        paper_reconstruction_metrics(x, y, batch_size=0)


def test_network_view_decodes_a_gray_modality_at_three_channels():
    spec = autoencoder(1, 3, seed=0).spec
    torch.manual_seed(0)
    model = TriplaneAutoencoder(
        dataclasses.replace(spec, config=dataclasses.replace(spec.config, gray_to_rgb=True))
    ).eval()
    view = network_view(model)
    assert view is not model and view.decoder is model.decoder and model.spec.channels == 1
    with torch.no_grad():
        latent = model.encode(torch.rand(2, 1, 3, 8, 8, generator=torch.Generator().manual_seed(4)) * 2 - 1)
        wide = view.decode(latent)
        assert wide.shape[1] == 3 and not torch.equal(wide[:, 0], wide[:, 2])
        torch.testing.assert_close(wide.mean(dim=1, keepdim=True), model.decode(latent))
    plain = autoencoder(1, 3, seed=0)
    assert network_view(plain) is plain
