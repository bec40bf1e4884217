"""The paper's depth "L2": an RMSE between min-max-normalised uint8 videos (docs/evaluation.md, "L2").

SyncVP normalises the predicted and the GT depth batch separately by their global min and max,
then takes per video `sqrt(mean((p - g)^2))` over all T x C x H x W values, and reports it
x100. Depth SSIM is the ordinary SSIM (`syncvp.metrics.ssim_psnr.ssim`) on the same normalised
values. Nothing here is depth-specific: any image modality can be scored this way.
"""

from __future__ import annotations

from torch import Tensor

from syncvp.metrics.images import Scope, normalise


def rmse(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """RMSE of float videos [B, C, T, H, W] -> (per video [B], per frame [B, T]), float64.

    Per video: sqrt of the mean squared error over C, T, H, W (equal to the root of the mean of
    the per-frame MSEs, as every frame has the same size). Per frame: sqrt of that frame's MSE.
    """
    if pred.shape != target.shape or pred.ndim != 5:
        raise ValueError(
            f"rmse needs two [B, C, T, H, W] videos of equal shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    frame_mse = ((pred.double() - target.double()) ** 2).mean(dim=(1, 3, 4))
    return frame_mse.mean(dim=1).sqrt(), frame_mse.sqrt()


def l2(pred: Tensor, target: Tensor, scope: Scope = "batch") -> tuple[Tensor, Tensor]:
    """The paper's L2 (unscaled) of uint8 videos [B, C, T, H, W]: `rmse` after normalising each
    tensor by itself over `scope` ("batch" is the paper's)."""
    return rmse(normalise(pred, scope), normalise(target, scope))
