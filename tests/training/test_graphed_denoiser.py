"""`GraphedDenoiser`: on CPU it calls the denoiser plainly (same outputs); on CUDA it replays one
captured graph and gives the plain outputs for every new input, and calls of other shapes run
plainly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from syncvp.training.fastpath import GraphedDenoiser


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(4, 4, 3, padding=1)
        self.emb = nn.Embedding(1000, 4)

    def forward(self, z: dict, t: torch.Tensor) -> dict:
        return {k: self.conv(v) * self.emb(t)[:, :, None] + v for k, v in z.items()}


def inputs(batch: int, device, seed: int):
    g = torch.Generator().manual_seed(seed)
    z = {m: torch.randn(batch, 4, 16, generator=g).to(device) for m in ("rgb", "depth")}
    return z, torch.randint(0, 1000, (batch,), generator=g).to(device)


def check(device) -> GraphedDenoiser:
    model = Tiny().to(device).eval()
    graphed = GraphedDenoiser(model, *inputs(2, device, 0))
    with torch.no_grad():
        for seed in (1, 2, 3):
            z, t = inputs(2, device, seed)
            got, want = graphed(z, t), model(z, t)
            assert got.keys() == want.keys()
            for k in want:
                torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6)
        z, t = inputs(3, device, 4)  # another batch: a plain call
        torch.testing.assert_close(graphed(z, t)["rgb"], model(z, t)["rgb"], rtol=0, atol=0)
    return graphed


def test_on_cpu_the_denoiser_is_called_plainly():
    graphed = check(torch.device("cpu"))
    assert graphed.graph is None and not graphed.failed  # nothing tried, nothing failed


@pytest.mark.gpu
def test_on_cuda_one_captured_graph_replays_the_plain_outputs():
    graphed = check(torch.device("cuda"))
    assert graphed.graph is not None and not graphed.failed


@pytest.mark.gpu
def test_a_failed_capture_warns_once_and_calls_plainly():
    warnings = []

    def bad(z, t):
        return {k: v[v > 0].sum() * v for k, v in z.items()}  # data-dependent shape: capture fails

    z, t = inputs(2, "cuda", 0)
    graphed = GraphedDenoiser(bad, z, t, warn=warnings.append)
    assert graphed.graph is None and graphed.failed and len(warnings) == 1
    with torch.no_grad():
        torch.testing.assert_close(graphed(z, t)["rgb"], bad(z, t)["rgb"])
