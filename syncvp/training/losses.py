"""Loss terms of the autoencoder (docs/method.md §2.4). Pure functions of tensors.

Generator side:  L = w_pix mean|x - x^| + w_p LPIPS(x_f, x^_f)
                     + [step >= disc_start] (-w_g (mean D2(x^_f) + mean D3(x^)) + w_fm (FM_2D + FM_3D))
Discriminator:   L_D = hinge(D2) + hinge(D3), hinge = (mean relu(1 - D(x)) + mean relu(1 + D(x^))) / 2
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def pick_frames(video: Tensor, index: Tensor) -> Tensor:
    """One frame per clip: video [B, C, T, H, W], index [B] -> [B, C, H, W]."""
    return video[torch.arange(video.shape[0], device=video.device), :, index.to(video.device)]


def hinge_discriminator(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """(mean relu(1 - D(x)) + mean relu(1 + D(x^))) / 2."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def hinge_generator(fake_logits: Tensor) -> Tensor:
    """-mean D(x^)."""
    return -fake_logits.mean()


def feature_matching(fake: Sequence[Tensor], real: Sequence[Tensor]) -> Tensor:
    """sum_i mean|f_i(x^) - f_i(x)| over every feature but the last (the logits); real detached."""
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake[:-1], real[:-1]))
