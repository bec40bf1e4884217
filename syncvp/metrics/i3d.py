"""Inception-I3D (Kinetics-400) for FVD, in the key layout of `i3d_pretrained_400.pt`.

The network is the PyTorch port of DeepMind's TF-Hub `i3d-kinetics-400` that PVDM and SyncVP
load (docs/evaluation.md, "FVD"): 57 conv+BN units (bias-free convs, BatchNorm eps 1e-5) and a
`logits` 1x1x1 conv with bias, 12.70 M parameters, 344 state-dict entries (57 of them
`num_batches_tracked`). Every conv and max-pool pads "SAME" the TF way (total padding
`max((ceil(s / stride) - 1) * stride + k - s, 0)`, the smaller half in front, zeros).

Forward (SyncVP's version): trunk up to `Mixed_5c` -> [B, 1024, T', 7, 7]; average pool
[2, 7, 7] with stride 1 (or [1, 7, 7] when T' = 1); `logits` conv -> [B, 400, T'', 1, 1];
spatial squeeze and mean over time -> [B, 400] pre-softmax logits. SyncVP feeds chunks of at
most 16 frames (`syncvp.metrics.fvd` does the chunking), for which T'' = 1.

Preprocessing (`preprocess`): uint8 / 255, bilinear (align_corners=False, no antialias) resize
so that the shorter side is 224 (the other side `ceil(side * 224 / shorter)`), centre crop
224 x 224, then (x - 0.5) * 2, giving [-1, 1].
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from syncvp.io.weights import WeightsSpec, read_state_dict

RESOLUTION = 224
CLASSES = 400
BN_EPS = 1e-5

I3D_WEIGHTS = WeightsSpec(
    title="I3D Kinetics-400 (FVD)",
    filename="i3d_pretrained_400.pt",
    url=(
        "Google Drive id 1fBNl3TS0LA5FEhZv5nMGJs2_7qQmvTmh (the copy SyncVP/PVDM fetch with gdown; there is "
        "no official URL), or Drive id 1mQK8KD8G6UWRa5t87SRMm5PVXtlpneJT (VideoGPT), or the TATS repository's "
        "tats/fvd/i3d_pretrained_400.pt; about 50.8 MB, 344 tensors"
    ),
    key="weights.i3d",
)

# (name, input channels, [b0, b1a, b1b, b2a, b2b, b3b] output channels); the pools sit between.
INCEPTION = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)


class I3DWeightsError(ValueError):
    """An I3D weights file does not hold the `i3d_pretrained_400.pt` layout."""


def same_padding(x: Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> Tensor:
    """Zero-pad [B, C, T, H, W] as TF "SAME" does (the extra pixel of an odd total at the back)."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """SAME-padded Conv3d, then BatchNorm3d and ReLU (or a plain biased conv for the logits)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        logits: bool = False,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.is_logits = kernel, stride, logits
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride, padding=0, bias=logits)
        if not logits:
            self.bn = nn.BatchNorm3d(cout, eps=BN_EPS, momentum=0.001)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(same_padding(x, self.kernel, self.stride))
        return x if self.is_logits else F.relu(self.bn(x))


class MaxPoolSame(nn.Module):
    """Max pool with TF "SAME" zero padding (inputs are post-ReLU, so zeros never win wrongly)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool3d(same_padding(x, self.kernel, self.stride), self.kernel, self.stride)


class Inception(nn.Module):
    """Four branches concatenated on channels: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | pool -> 1x1."""

    def __init__(self, cin: int, out: tuple[int, ...]) -> None:
        super().__init__()
        self.b0 = Unit3D(cin, out[0])
        self.b1a, self.b1b = Unit3D(cin, out[1]), Unit3D(out[1], out[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, out[3]), Unit3D(out[3], out[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPoolSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, out[5])

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


def _trunk() -> list[tuple[str, nn.Module]]:
    """The endpoints in order, named as the keys of `i3d_pretrained_400.pt`."""
    layers: list[tuple[str, nn.Module]] = [
        ("Conv3d_1a_7x7", Unit3D(3, 64, (7, 7, 7), (2, 2, 2))),
        ("MaxPool3d_2a_3x3", MaxPoolSame((1, 3, 3), (1, 2, 2))),
        ("Conv3d_2b_1x1", Unit3D(64, 64)),
        ("Conv3d_2c_3x3", Unit3D(64, 192, (3, 3, 3))),
        ("MaxPool3d_3a_3x3", MaxPoolSame((1, 3, 3), (1, 2, 2))),
    ]
    pools = {"Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3)), "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2))}
    for name, cin, out in INCEPTION:
        if name in pools:
            pool, kernel = pools[name]
            layers.append((pool, MaxPoolSame(kernel, (2, 2, 2))))
        layers.append((name, Inception(cin, out)))
    return layers


class InceptionI3d(nn.Module):
    """I3D Kinetics-400 returning the 400-d logits of [B, 3, T, 224, 224] clips in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        layers = _trunk()
        self.endpoints = [name for name, _ in layers]
        for name, module in layers:
            self.add_module(name, module)
        self.logits = Unit3D(1024, CLASSES, logits=True)

    def forward(self, x: Tensor) -> Tensor:
        """[B, 3, T, 224, 224] -> [B, 400]; T <= 16 is SyncVP's regime (longer clips average over
        the sliding [2, 7, 7] pool positions)."""
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"I3D needs [B, 3, T, H, W] clips, got {tuple(x.shape)}")
        for name in self.endpoints:
            x = getattr(self, name)(x)
        if x.shape[-2:] != (7, 7):
            raise ValueError(
                f"I3D needs {RESOLUTION}x{RESOLUTION} frames (use preprocess); "
                f"the trunk gave {tuple(x.shape[-2:])} instead of 7x7"
            )
        x = F.avg_pool3d(x, (2 if x.shape[2] > 1 else 1, 7, 7), stride=1)
        return self.logits(x).squeeze(4).squeeze(3).mean(dim=2)


def preprocess(videos: Tensor) -> Tensor:
    """uint8 videos [B, C, T, H, W] (C = 3, or 1 replicated) -> float32 [B, 3, T, 224, 224] in [-1, 1].

    Shorter side to 224 by bilinear interpolation (align_corners=False), the other side
    `ceil(side * 224 / shorter)`, centre crop, then (x / 255 - 0.5) * 2.
    """
    if videos.dtype != torch.uint8 or videos.ndim != 5 or videos.shape[1] not in (1, 3):
        raise ValueError(
            f"I3D preprocessing needs uint8 [B, C, T, H, W] with C in (1, 3), got {videos.dtype} {tuple(videos.shape)}"
        )
    b, c, t, h, w = videos.shape
    x = videos.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w).float() / 255.0
    scale = RESOLUTION / min(h, w)
    size = (RESOLUTION, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), RESOLUTION)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    top, left = (size[0] - RESOLUTION) // 2, (size[1] - RESOLUTION) // 2
    x = x[:, :, top : top + RESOLUTION, left : left + RESOLUTION]
    x = (x - 0.5) * 2
    x = x.reshape(b, t, c, RESOLUTION, RESOLUTION).permute(0, 2, 1, 3, 4)
    return x.expand(-1, 3, -1, -1, -1).contiguous() if c == 1 else x.contiguous()


def load_i3d(path: Path | str, device: torch.device | str = "cpu") -> InceptionI3d:
    """Build I3D and strictly load `i3d_pretrained_400.pt` from `path` (weights_only, no download).

    Files saved before BatchNorm had `num_batches_tracked` load too (those buffers are unused in
    eval mode); any other missing, unexpected or mis-shaped tensor raises I3DWeightsError naming it.
    """
    path = Path(path)
    state = read_state_dict(path, I3D_WEIGHTS)  # a truncated or foreign file: one line naming it
    model = InceptionI3d()
    own = model.state_dict()
    state = dict(state)
    for key in own:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = own[key]
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        raise I3DWeightsError(
            f"{path} is not i3d_pretrained_400.pt: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}, wrong shapes {wrong[:5]}"
        )
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False).to(device)
