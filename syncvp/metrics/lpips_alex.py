"""LPIPS v0.1 with the AlexNet trunk, as SyncVP evaluates it, built without any download.

SyncVP scores every predicted frame with `lpips.LPIPS(net='alex')` on inputs in [-1, 1]
(docs/evaluation.md, "LPIPS"). That constructor fetches the torchvision AlexNet through torch.hub;
here the model is built by the same `lpips` package with `pnet_rand=True` (a randomly
initialised trunk, so torchvision downloads nothing) and `pretrained=False`, then:

- the learned linear heads come from the file bundled in the `lpips` wheel
  (`lpips/weights/v0.1/alex.pth`, keys `lin{0..4}.model.1.weight`);
- the trunk comes from a local torchvision AlexNet state dict (`alexnet-owt-7be5be79.pth`,
  params.yaml `weights.lpips_alexnet`), keys renamed `features.{0,3,6,8,10}.*` ->
  `net.slice{1..5}.{0,3,6,8,10}.*` (the classifier tensors of that file are not used);

both loaded with `weights_only=True`, and every tensor of the model accounted for (no silent
partial load). Frames must be at least 31 x 31 pixels (the AlexNet trunk's receptive field).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from syncvp.io.weights import WeightsSpec, read_state_dict

ALEXNET_WEIGHTS = WeightsSpec(
    title="AlexNet trunk of LPIPS (torchvision ImageNet weights)",
    filename="alexnet-owt-7be5be79.pth",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    key="weights.lpips_alexnet",
)

TRUNK_SLICES = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}  # torchvision `features` index -> lpips `net.slice<n>`
MIN_SIZE = 31


class LpipsUnavailableError(ImportError):
    """The `lpips` package (or the torchvision it imports) cannot be imported."""


class LpipsWeightsError(ValueError):
    """A weights file does not hold what LPIPS-AlexNet needs."""


def import_lpips():
    """Import the `lpips` package, or raise LpipsUnavailableError saying why."""
    try:
        import lpips
    except Exception as err:  # lpips imports torchvision; a torchvision built for another torch fails here
        raise LpipsUnavailableError(
            f"LPIPS needs the `lpips` package and a torchvision build matching torch {torch.__version__}; "
            f"importing lpips failed: {type(err).__name__}: {err}"
        ) from err
    return lpips


def trunk_state(path: Path | str) -> dict[str, Tensor]:
    """The AlexNet conv tensors of a torchvision state dict, renamed to the LPIPS layout."""
    path = Path(path)
    state = read_state_dict(path, ALEXNET_WEIGHTS)  # a truncated or foreign file: one line naming it
    out = {}
    for index, piece in TRUNK_SLICES.items():
        for kind in ("weight", "bias"):
            key = f"features.{index}.{kind}"
            if key not in state:
                raise LpipsWeightsError(
                    f"{path}: missing {key} (not a torchvision AlexNet state dict, e.g. {ALEXNET_WEIGHTS.filename})"
                )
            out[f"net.slice{piece}.{index}.{kind}"] = state[key]
    return out


def heads_path() -> Path:
    """The linear-head file bundled in the lpips wheel."""
    return Path(import_lpips().__file__).parent / "weights" / "v0.1" / "alex.pth"


def build_lpips_alex(trunk_path: Path | str, device: torch.device | str = "cpu") -> nn.Module:
    """`lpips.LPIPS(net='alex')` with the trunk from `trunk_path` and the bundled heads; no network."""
    lpips = import_lpips()
    model = lpips.LPIPS(pretrained=False, net="alex", version="0.1", pnet_rand=True, verbose=False)
    heads = torch.load(heads_path(), map_location="cpu", weights_only=True)
    state = {**trunk_state(trunk_path), **heads}
    own = model.state_dict()
    wrong = [
        f"{k} {tuple(v.shape)} (expected {tuple(own[k].shape)})"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if wrong:
        raise LpipsWeightsError(f"{trunk_path}: wrong shapes for LPIPS-AlexNet: {wrong}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    # `lins.i` aliases `lin<i>` (the same modules); the scaling layer holds fixed constants.
    left = [k for k in missing if not (k.startswith("lins.") or k.startswith("scaling_layer."))]
    if left or unexpected:
        raise LpipsWeightsError(f"LPIPS-AlexNet load incomplete: missing {left}, unexpected {list(unexpected)}")
    return model.eval().requires_grad_(False).to(device)


def to_lpips_input(frames: Tensor) -> Tensor:
    """uint8 [N, C, H, W] (C = 3, or 1 replicated) -> float32 [N, 3, H, W] = x / 127.5 - 1."""
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[1] not in (1, 3):
        raise ValueError(f"LPIPS needs uint8 [N, C, H, W] with C in (1, 3), got {frames.dtype} {tuple(frames.shape)}")
    if min(frames.shape[-2:]) < MIN_SIZE:
        raise ValueError(
            f"LPIPS-AlexNet needs frames of at least {MIN_SIZE}x{MIN_SIZE} pixels, got {tuple(frames.shape[-2:])}"
        )
    x = frames.float() / 127.5 - 1.0
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@torch.no_grad()
def lpips_frames(model: nn.Module, pred: Tensor, target: Tensor, batch_size: int = 64) -> Tensor:
    """Per-frame LPIPS of uint8 videos [B, C, T, H, W] -> float64 [B, T]."""
    if pred.shape != target.shape or pred.ndim != 5:
        raise ValueError(
            f"lpips_frames needs two [B, C, T, H, W] videos of equal shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    b, c, t, h, w = pred.shape
    flat_p = pred.transpose(1, 2).reshape(b * t, c, h, w)
    flat_t = target.transpose(1, 2).reshape(b * t, c, h, w)
    device = next(model.parameters()).device
    out = []
    for start in range(0, b * t, batch_size):
        x = to_lpips_input(flat_p[start : start + batch_size].to(device))
        y = to_lpips_input(flat_t[start : start + batch_size].to(device))
        out.append(model(x, y).flatten().double().cpu())
    return torch.cat(out).reshape(b, t)
