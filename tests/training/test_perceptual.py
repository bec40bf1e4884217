"""LPIPS-VGG16 of the autoencoder loss: built offline from a local torchvision-layout VGG16 file
(random weights here) and the heads shipped with `lpips`; equal to the `lpips` package's value."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from syncvp.io.weights import WeightsFileError
from syncvp.training.perceptual import load_lpips_vgg, perceptual_distance, shipped_heads, vgg16_features


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    """A torchvision-layout VGG16 state dict with random weights (features + a classifier key)."""
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in vgg16_features().state_dict().items()}
    state["classifier.6.bias"] = torch.zeros(1000)
    path = tmp_path_factory.mktemp("weights") / "vgg16-397923af.pth"
    torch.save(state, path)
    return path


def lpips_trunk_key(key: str) -> str:
    """torchvision `features.<i>.<p>` -> the lpips package's `slice<k>.<i>.<p>`."""
    index = int(key.split(".")[1])
    k = next(n for n, end in enumerate((4, 9, 16, 23, 30), start=1) if index < end)
    return f"slice{k}.{key[len('features.') :]}"


def reference_lpips(vgg_file: Path):
    """`lpips.LPIPS(net="vgg")` (built without downloading) with the same trunk."""
    import lpips

    state = {k: v for k, v in torch.load(vgg_file).items() if k.startswith("features.")}
    net = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    net.net.load_state_dict({lpips_trunk_key(k): v for k, v in state.items()})
    return net.eval()


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")  # torchvision, called by lpips
def test_matches_the_lpips_package(vgg_file):
    net = load_lpips_vgg(vgg_file)
    ref = reference_lpips(vgg_file)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    y = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    assert torch.allclose(perceptual_distance(net, x, y), ref(x, y).flatten(), rtol=1e-5, atol=1e-7)


def test_offline_build_loads_local_trunk_and_shipped_heads(vgg_file):
    net = load_lpips_vgg(vgg_file)
    state = torch.load(vgg_file, weights_only=True)
    for key, value in net.features.state_dict().items():
        assert torch.equal(value, state[f"features.{key}"])
    heads = torch.load(shipped_heads(), map_location="cpu", weights_only=True)
    for i, head in enumerate(net.heads):
        assert torch.equal(head.weight, heads[f"lin{i}.model.1.weight"])
    assert not net.training and not any(p.requires_grad for p in net.parameters())

    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    y = (torch.rand(2, 3, 32, 32, generator=g) * 2 - 1).requires_grad_()
    assert torch.allclose(perceptual_distance(net, x, x), torch.zeros(2))
    d = perceptual_distance(net, x, y)
    assert d.shape == (2,) and (d > 0).all()
    d.sum().backward()
    assert y.grad.abs().sum() > 0
    gray = perceptual_distance(net, x[:, :1], y[:, :1].detach())
    assert torch.allclose(gray, net(x[:, :1].expand(-1, 3, -1, -1), y[:, :1].detach().expand(-1, 3, -1, -1)))


def test_a_foreign_file_is_refused(tmp_path):
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "x.pth")
    with pytest.raises(WeightsFileError, match="not a torchvision VGG16"):
        load_lpips_vgg(tmp_path / "x.pth")
