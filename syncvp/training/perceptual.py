"""The VGG16 LPIPS perceptual loss of autoencoder training (docs/method.md §2.4, docs/evaluation.md, "LPIPS").

LPIPS v0.1 (Zhang et al. 2018) with a VGG16 trunk, the network taming-transformers and PVDM use:

    d(x, y) = sum_l mean_hw( w_l . (n(f_l(s(x))) - n(f_l(s(y))))^2 )

with s the input scaling ((x - shift) / scale, per RGB channel), f_l the VGG16 activations
relu1_2, relu2_2, relu3_3, relu4_3, relu5_3, n the unit-normalisation over channels
(eps 1e-10) and w_l the learned 1x1 linear heads.

Nothing is downloaded and torchvision is not needed: the trunk is built here with torchvision's
layer indices and loaded from the local `vgg16-397923af.pth` (`weights.lpips_vgg16`); the heads
are `lpips/weights/v0.1/vgg.pth` shipped in the `lpips` wheel (byte-identical to PVDM's
`losses/vgg.pth`), read from the installed package without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import Tensor, nn

from syncvp.io.weights import WeightsFileError, WeightsSpec, read_state_dict, weights_fix

VGG16 = WeightsSpec(
    title="torchvision VGG16 (ImageNet) trunk of the LPIPS perceptual loss",
    filename="vgg16-397923af.pth",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    key="weights.lpips_vgg16",
)

# VGG16 "D": conv widths, "M" = 2x2 max-pool; torchvision numbers the layers conv, relu, ..., pool.
_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_WIDTHS = (64, 128, 256, 512, 512)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def vgg16_features() -> nn.Sequential:
    """torchvision's `vgg16().features` up to relu5_3 (same indices, so its keys load as-is)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in _CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=True)]
            channels = item
    return nn.Sequential(*layers)


def shipped_heads() -> Path:
    """`lpips/weights/v0.1/vgg.pth` of the installed `lpips` package."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the `lpips` package (which ships the LPIPS linear heads) is not installed")
    return Path(spec.submodule_search_locations[0]) / "weights" / "v0.1" / "vgg.pth"


class LpipsVgg(nn.Module):
    """LPIPS-VGG16 v0.1: forward(x, y) with [N, 3, H, W] in [-1, 1] -> distance per image [N]."""

    def __init__(self):
        super().__init__()
        self.features = vgg16_features()
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _WIDTHS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))

    def taps(self, x: Tensor) -> list[Tensor]:
        out, h = [], (x - self.shift) / self.scale
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in _TAPS:
                out.append(h / (h.square().sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return sum(
            head((a - b).square()).mean(dim=(1, 2, 3)) for head, a, b in zip(self.heads, self.taps(x), self.taps(y))
        )


def load_lpips_vgg(path: str | Path, heads: str | Path | None = None) -> LpipsVgg:
    """LPIPS-VGG16 with the trunk from `path` (a torchvision VGG16 state dict) and the shipped
    linear heads (or `heads`); frozen, in eval mode.

    Raises:
        WeightsFileError: `path` is truncated, foreign or lacks a convolution of the VGG16 trunk.
        KeyError: `heads` lacks a linear head.
    """
    net = LpipsVgg()
    state = read_state_dict(path, VGG16)  # a truncated or foreign file: one line naming it
    trunk = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    missing = sorted(set(net.features.state_dict()) - set(trunk))
    if missing:
        raise WeightsFileError(
            f"{path}: not a torchvision VGG16 state dict (missing features.{missing[0]} ...); {weights_fix(VGG16)}"
        )
    net.features.load_state_dict({k: trunk[k] for k in net.features.state_dict()})
    lin = torch.load(heads or shipped_heads(), map_location="cpu", weights_only=True)
    try:
        net.heads.load_state_dict({f"{i}.weight": lin[f"lin{i}.model.1.weight"] for i in range(len(_WIDTHS))})
    except KeyError as exc:
        raise KeyError(f"{heads or shipped_heads()}: not the LPIPS VGG linear heads (no {exc})") from None
    return net.eval().requires_grad_(False)


def perceptual_distance(net: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """LPIPS per image of [N, C, H, W] in [-1, 1] (gray images are replicated to RGB) -> [N]."""
    if x.shape[1] == 1:
        x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
    return net(x, y)
