"""Fixtures for metric tests: random weights in the official file layouts, and the lpips package."""

from __future__ import annotations

import pytest
import torch
from torch import nn

ALEX_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}


def alexnet_features() -> nn.Sequential:
    """torchvision's AlexNet `features` (torchvision/models/alexnet.py)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
    )


@pytest.fixture(scope="session")
def lpips_package():
    """The real `lpips` package (it imports torchvision at import time)."""
    import lpips

    return lpips


@pytest.fixture
def alexnet_file(tmp_path):
    """A random torchvision AlexNet state dict (features and classifier), as alexnet-owt-7be5be79.pth."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for index, (cout, cin, k) in ALEX_CONVS.items():
        state[f"features.{index}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * 0.05
        state[f"features.{index}.bias"] = torch.randn(cout, generator=gen) * 0.05
    for index in (1, 4, 6):  # present in the real file, unused by LPIPS (kept tiny here)
        state[f"classifier.{index}.weight"] = torch.zeros(2, 2)
        state[f"classifier.{index}.bias"] = torch.zeros(2)
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(state, path)
    return path


# The documented i3d_pretrained_400.pt layout (docs/evaluation.md, "FVD"), written out independently
# of syncvp.metrics.i3d: unit name -> (out channels, in channels, kernel).
def i3d_units() -> dict[str, tuple[int, int, tuple[int, int, int]]]:
    units = {
        "Conv3d_1a_7x7": (64, 3, (7, 7, 7)),
        "Conv3d_2b_1x1": (64, 64, (1, 1, 1)),
        "Conv3d_2c_3x3": (192, 64, (3, 3, 3)),
    }
    mixed = {
        "3b": (192, [64, 96, 128, 16, 32, 32]),
        "3c": (256, [128, 128, 192, 32, 96, 64]),
        "4b": (480, [192, 96, 208, 16, 48, 64]),
        "4c": (512, [160, 112, 224, 24, 64, 64]),
        "4d": (512, [128, 128, 256, 24, 64, 64]),
        "4e": (512, [112, 144, 288, 32, 64, 64]),
        "4f": (528, [256, 160, 320, 32, 128, 128]),
        "5b": (832, [256, 160, 320, 32, 128, 128]),
        "5c": (832, [384, 192, 384, 48, 128, 128]),
    }
    one, three = (1, 1, 1), (3, 3, 3)
    for name, (cin, o) in mixed.items():
        units.update(
            {
                f"Mixed_{name}.b0": (o[0], cin, one),
                f"Mixed_{name}.b1a": (o[1], cin, one),
                f"Mixed_{name}.b1b": (o[2], o[1], three),
                f"Mixed_{name}.b2a": (o[3], cin, one),
                f"Mixed_{name}.b2b": (o[4], o[3], three),
                f"Mixed_{name}.b3b": (o[5], cin, one),
            }
        )
    return units


def i3d_state(seed: int = 0, batches_tracked: bool = True) -> dict[str, torch.Tensor]:
    """A random state dict in the documented layout, with BN statistics near identity."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, (cout, cin, k) in i3d_units().items():
        fan_in = cin * k[0] * k[1] * k[2]
        state[f"{name}.conv3d.weight"] = torch.randn(cout, cin, *k, generator=gen) * (2.0 / fan_in) ** 0.5
        state[f"{name}.bn.weight"] = 1 + 0.1 * torch.randn(cout, generator=gen)
        state[f"{name}.bn.bias"] = 0.1 * torch.randn(cout, generator=gen)
        state[f"{name}.bn.running_mean"] = 0.1 * torch.randn(cout, generator=gen)
        state[f"{name}.bn.running_var"] = 1 + 0.1 * torch.rand(cout, generator=gen)
        if batches_tracked:
            state[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)
    state["logits.conv3d.weight"] = torch.randn(400, 1024, 1, 1, 1, generator=gen) * 0.03
    state["logits.conv3d.bias"] = torch.randn(400, generator=gen) * 0.01
    return state
