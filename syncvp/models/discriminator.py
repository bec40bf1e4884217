"""PatchGAN discriminators (2-D on frames, 3-D on clips) for the optional GAN fine-tune of the
autoencoder (docs/method.md §2.4; pix2pix's N-layer PatchGAN, as PVDM).

Layers: conv(k4, s2) + LeakyReLU(0.2); (layers - 1) x [conv(k4, s2) + BatchNorm + LeakyReLU];
conv(k4, s1) + BatchNorm + LeakyReLU; conv(k4, s1) -> 1 logit per patch. Channels double from
`ndf` up to 512. Weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02). The official code uses
SyncBatchNorm; a DDP run converts these with `nn.SyncBatchNorm.convert_sync_batchnorm`.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn


class PatchDiscriminator(nn.Module):
    """forward(x) -> (logits, features): features are the outputs of every block (the last one
    is the logits), used for feature matching.

    Args:
        channels: input channels.
        ndf: channels of the first layer.
        layers: strided layers.
        dims: 2 (x [N, C, H, W]) or 3 (x [B, C, T, H, W]).
    """

    def __init__(self, channels: int, ndf: int, layers: int, dims: Literal[2, 3]):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
        act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        widths = [min(ndf * 2 ** i, 512) for i in range(layers + 1)]
        blocks = [nn.Sequential(conv(channels, widths[0], 4, stride=2, padding=2), act())]
        for i in range(1, layers):
            blocks.append(nn.Sequential(conv(widths[i - 1], widths[i], 4, stride=2, padding=2), norm(widths[i]), act()))
        blocks.append(nn.Sequential(conv(widths[layers - 1], widths[layers], 4, stride=1, padding=2),
                                    norm(widths[layers]), act()))
        blocks.append(nn.Sequential(conv(widths[layers], 1, 4, stride=1, padding=2)))
        self.blocks = nn.ModuleList(blocks)
        self.apply(_init)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return x, features


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Conv3d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
