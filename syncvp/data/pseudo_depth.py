"""Depth-Anything-V2 pseudo-labels for a video: the official inference, batched over frames.

Per frame, exactly as the official `infer_image`: RGB / 255, resize keeping the aspect so the
shorter side is `input_size` (both sides rounded to multiples of 14, never below
`input_size`; bicubic, no antialias), ImageNet mean/std, the network, then bilinear
(align_corners=True) back to the frame size. The relative inverse depth is then min-max
normalised to 0-255 per frame (the official `run.py` convention) or per video, and truncated
to uint8 like the official `astype(np.uint8)`; larger = nearer.

The job the `pseudo_depth` flow calls: `estimator_weights` (resolve and check the checkpoint before
any frame is read), `load_estimator`, `estimate_depth` per video, `attributes` to store with it,
and `code_digest` (the labelling code's part of a label key).
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F

from syncvp.data import interim
from syncvp.io.weights import resolve_weights
from syncvp.models import depth_anything
from syncvp.progress import ProgressFn, ProgressEvent, no_progress

PATCH = 14
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Normalization = Literal["per_frame", "per_video"]
Precision = Literal["auto", "float32", "bfloat16"]
DESCRIPTIONS = {
    "per_frame": "per-frame min-max to 0-255 (truncated to uint8), larger = nearer",
    "per_video": "per-video min-max to 0-255 (truncated to uint8), larger = nearer",
}


def network_size(height: int, width: int, input_size: int = 518) -> tuple[int, int]:
    """The official lower-bound resize: scale s = max(input_size / height, input_size / width);
    each side becomes round(s * side / 14) * 14, or ceil(...) * 14 if that is below input_size.

    >>> network_size(1024, 2048), network_size(480, 640), network_size(128, 128)
    ((518, 1036), (518, 686), (518, 518))
    """
    scale = max(input_size / height, input_size / width)

    def side(n: int) -> int:
        x = scale * n
        y = int(round(x / PATCH)) * PATCH
        return y if y >= input_size else int(np.ceil(x / PATCH)) * PATCH

    return side(height), side(width)


def preprocess(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 RGB [B, H, W, 3] -> normalised float32 [B, 3, size] (bicubic, no antialias)."""
    x = frames.permute(0, 3, 1, 2).float() / 255.0
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=False)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def uses_bf16(device: torch.device, precision: Precision) -> bool:
    """bf16 autocast: always for "bfloat16", on CUDA only for "auto", never for "float32"."""
    return precision == "bfloat16" or (precision == "auto" and device.type == "cuda")


def _predict_batches(model: torch.nn.Module, frames: np.ndarray, input_size: int, batch_size: int,
                     precision: Precision, progress: ProgressFn) -> Iterator[torch.Tensor]:
    """Yield relative inverse depth at frame size, float32 [b, H, W] on the model's device."""
    device = next(model.parameters()).device
    t, h, w = frames.shape[:3]
    size = network_size(h, w, input_size)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(device, precision))
    with torch.inference_mode(), autocast:
        for start in range(0, t, batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(frames[start:start + batch_size])).to(device)
            x = preprocess(batch, size).contiguous(memory_format=torch.channels_last)
            depth = model(x).float()
            yield F.interpolate(depth[:, None], size=(h, w), mode="bilinear", align_corners=True)[:, 0]
            progress(ProgressEvent("frames", min(start + batch_size, t), t))


def _to_uint8(depth: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """(d - lo) / (hi - lo) * 255, truncated to uint8; a constant map (hi == lo) gives 0."""
    span = hi - lo
    scaled = (depth - lo) / torch.where(span > 0, span, torch.ones_like(span)) * 255.0
    return scaled.clamp(0, 255).to(torch.uint8)


def estimate_depth(model: torch.nn.Module, frames: np.ndarray, *, input_size: int = 518, batch_size: int = 8,
                   normalization: Normalization = "per_frame", precision: Precision = "auto",
                   progress: ProgressFn = no_progress) -> np.ndarray:
    """Pseudo-depth of one video.

    Args:
        model: Depth-Anything-V2 in eval mode on its device (see `prepare_model`).
        frames: RGB uint8 [T, H, W, 3].
        input_size: shorter side of the network input (official: 518).
        batch_size: frames per forward pass.
        normalization: "per_frame" or "per_video" min-max (see `DESCRIPTIONS`).
        precision: "auto" (bf16 autocast on CUDA), "float32" or "bfloat16".
        progress: receives ("frames", done, T) after every batch.

    Returns:
        uint8 [T, H, W]: larger = nearer.
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be RGB uint8 [T >= 1, H, W, 3], got {frames.dtype} {frames.shape}")
    if normalization not in DESCRIPTIONS:
        raise ValueError(f"normalization must be one of {sorted(DESCRIPTIONS)}, got {normalization!r}")
    batches = _predict_batches(model, frames, input_size, batch_size, precision, progress)
    if normalization == "per_frame":
        out = []
        for d in batches:
            lo, hi = d.amin(dim=(1, 2), keepdim=True), d.amax(dim=(1, 2), keepdim=True)
            out.append(_to_uint8(d, lo, hi).cpu())
        return torch.cat(out).numpy()
    depth = torch.cat([d.cpu() for d in batches])  # per_video: one min-max over the whole video
    return _to_uint8(depth, depth.min(), depth.max()).numpy()


def prepare_model(model: torch.nn.Module, device: str | torch.device) -> torch.nn.Module:
    """Move a model to `device` for inference, with channels-last convolution weights (the DPT
    head runs ~20 % faster on CPU that way, the same float32 results to ~1e-6 relative; on CUDA
    it is the layout cuDNN prefers)."""
    return model.to(torch.device(device)).eval().to(memory_format=torch.channels_last)


def estimator_weights(weights: str | Path | None, encoder: str) -> Path:
    """The Depth-Anything-V2 checkpoint of `encoder` (params.yaml `weights.depth_anything_<encoder>`),
    resolved and checked: a null entry, a missing file or one holding another encoder is an error
    that names the right file and where to get it."""
    path = resolve_weights(weights, depth_anything.weights_spec(encoder))
    depth_anything.check_checkpoint(path, encoder)
    return path


def load_estimator(weights: str | Path, encoder: str, device: str | torch.device) -> torch.nn.Module:
    """Depth-Anything-V2 `encoder` from its checkpoint, ready for `estimate_depth` on `device`."""
    return prepare_model(depth_anything.load_depth_anything(weights, encoder), device)


def code_digest() -> str:
    """md5 of the labelling code (this module, the network, the depth-file writer): a label made by
    other code is made again."""
    code = "".join(inspect.getsource(m) for m in (sys.modules[__name__], depth_anything, interim))
    return hashlib.md5(code.encode()).hexdigest()


def attributes(*, encoder: str, input_size: int, normalization: Normalization, precision: Precision,
               device: torch.device, weights: str) -> dict:
    """What the stored pseudo-depth records about how it was made."""
    return {"model": "Depth-Anything-V2", "encoder": encoder, "input_size": input_size,
            "resize": "shorter side to input_size, multiples of 14, bicubic (no antialias); back: bilinear",
            "normalization": normalization, "encoding": DESCRIPTIONS[normalization],
            "bf16": uses_bf16(device, precision), "weights": weights}
