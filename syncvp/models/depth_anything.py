"""Depth-Anything-V2 (Yang et al., 2024): a DINOv2 ViT from timm plus a DPT head, loading the
official `depth_anything_v2_vit{s,b,l}.pth` files strictly and without renaming a key.

Module names follow the official checkpoint: `pretrained.*` is the backbone (timm's
`vit_*_patch14_dinov2` modules, re-homed so their names are the official ones, plus the unused
`mask_token`) and `depth_head.*` the DPT head. Shapes: images [B, 3, 14h, 14w] -> relative
inverse depth [B, 14h, 14w] (affine-invariant disparity: larger = nearer, >= 0, no fixed scale).

Position embeddings on a grid other than 37 x 37 follow the official DINOv2 formula, which
differs from timm's own dynamic resize (size-based, antialiased) by ~2e-3 relative in depth:
the 37 x 37 patch grid of the class-less embedding is resized by bicubic interpolation (no
antialias) with *scale factors* ((h + 0.1) / 37, (w + 0.1) / 37).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import timm
import torch
import torch.nn.functional as F
from torch import nn

from syncvp.io.model_file import describe_load_failure, load_state
from syncvp.io.weights import WeightsSpec

PATCH = 14
BASE_GRID = 37  # the checkpoints' position embeddings: 518 / 14 patches per side (+ 1 class token)
INTERPOLATE_OFFSET = 0.1


@dataclass(frozen=True)
class EncoderSpec:
    """One Depth-Anything-V2 size (EVAL_AND_DEPTH.md A1)."""

    name: str
    title: str
    hf_repo: str
    timm_name: str
    embed_dim: int
    depth: int
    layers: tuple[int, int, int, int]  # 0-based blocks whose (normed) outputs feed the head
    features: int
    out_channels: tuple[int, int, int, int]


ENCODERS = {
    "vits": EncoderSpec("vits", "ViT-S", "Small", "vit_small_patch14_dinov2", 384, 12, (2, 5, 8, 11), 64,
                        (48, 96, 192, 384)),
    "vitb": EncoderSpec("vitb", "ViT-B", "Base", "vit_base_patch14_dinov2", 768, 12, (2, 5, 8, 11), 128,
                        (96, 192, 384, 768)),
    "vitl": EncoderSpec("vitl", "ViT-L", "Large", "vit_large_patch14_dinov2", 1024, 24, (4, 11, 17, 23), 256,
                        (256, 512, 1024, 1024)),
}


def weights_spec(encoder: str) -> WeightsSpec:
    """Where the official checkpoint of an encoder comes from, and its params.yaml key."""
    e = ENCODERS[encoder]
    filename = f"depth_anything_v2_{encoder}.pth"
    url = f"https://huggingface.co/depth-anything/Depth-Anything-V2-{e.hf_repo}/resolve/main/{filename}"
    return WeightsSpec(title=f"Depth-Anything-V2 {e.title}", filename=filename, url=url,
                       key=f"weights.depth_anything_{encoder}")


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The official DINOv2 position embeddings for an h x w patch grid.

    Args:
        pos_embed: [1, 1 + G*G, C], class token first, a square G x G patch grid.
        grid: (h, w) patches of the input.

    Returns:
        [1, 1 + h*w, C] in `pos_embed`'s dtype (computed in float32). Unchanged when (h, w) = (G, G);
        otherwise the patch part is resized bicubically (align_corners=False, no antialias) with
        scale factors ((h + 0.1) / G, (w + 0.1) / G), which must land exactly on h x w.
    """
    h, w = grid
    n = pos_embed.shape[1] - 1
    side = int(math.isqrt(n))
    if side * side != n:
        raise ValueError(f"position embeddings hold {n} patch tokens, not a square grid")
    if (h, w) == (side, side):
        return pos_embed
    dim = pos_embed.shape[-1]
    cls, patches = pos_embed.float()[:, :1], pos_embed.float()[:, 1:]
    patches = patches.reshape(1, side, side, dim).permute(0, 3, 1, 2)
    scale = ((h + INTERPOLATE_OFFSET) / side, (w + INTERPOLATE_OFFSET) / side)
    patches = F.interpolate(patches, scale_factor=scale, mode="bicubic", align_corners=False, antialias=False)
    if tuple(patches.shape[-2:]) != (h, w):
        raise RuntimeError(f"position-embedding interpolation gave {tuple(patches.shape[-2:])}, expected {(h, w)}")
    patches = patches.permute(0, 2, 3, 1).reshape(1, h * w, dim)
    return torch.cat([cls, patches], dim=1).to(pos_embed.dtype)


class DinoV2Backbone(nn.Module):
    """timm's DINOv2 ViT with the official parameter names and position-embedding formula.

    Parameters: `cls_token` [1, 1, C], `pos_embed` [1, 1370, C], `mask_token` [1, C] (unused at
    inference, kept so the official checkpoint loads strictly), `patch_embed.proj`, `blocks.N.*`,
    `norm` (final LayerNorm, eps 1e-6, applied to every returned layer as in the official code).
    """

    def __init__(self, spec: EncoderSpec):
        super().__init__()
        vit = timm.create_model(spec.timm_name, pretrained=False, num_classes=0,
                                         img_size=PATCH * BASE_GRID, dynamic_img_size=True)
        if vit.num_prefix_tokens != 1 or vit.no_embed_class or not isinstance(vit.norm_pre, nn.Identity):
            raise RuntimeError(f"timm {spec.timm_name} is not the plain DINOv2 layout this wrapper assumes")
        self.layers = spec.layers
        self.cls_token, self.pos_embed = vit.cls_token, vit.pos_embed
        self.mask_token = nn.Parameter(torch.zeros(1, spec.embed_dim, device=vit.cls_token.device))
        self.patch_embed, self.blocks, self.norm = vit.patch_embed, vit.blocks, vit.norm

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Images [B, 3, 14h, 14w] -> normalised patch tokens [B, h*w, C] of each layer in `layers`."""
        tokens = self.patch_embed(x)  # [B, h, w, C] (timm's dynamic-size patch embedding)
        b, h, w, c = tokens.shape
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens.reshape(b, h * w, c)], dim=1)
        tokens = tokens + interpolate_pos_embed(self.pos_embed, (h, w)).to(tokens.dtype)
        out = []
        for i, block in enumerate(self.blocks[: max(self.layers) + 1]):
            tokens = block(tokens)
            if i in self.layers:
                out.append(self.norm(tokens)[:, 1:])
        return out


class ResidualConvUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x)))), 3x3 convolutions with bias, no normalisation."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """DPT feature fusion: (x [+ resConfUnit1(skip)]) -> resConfUnit2 -> bilinear resize
    (align_corners=True) to `size`, or x2 -> 1x1 `out_conv`."""

    def __init__(self, features: int):
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features)  # noqa: N815 (official name)
        self.resConfUnit2 = ResidualConvUnit(features)  # noqa: N815
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None,
                size: Sequence[int] | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    """The DPT depth head (`depth_head.*` in the official checkpoint; no class-token readout, no BN).

    Four token maps [B, h*w, C] -> `projects` (1x1) -> `resize_layers` (x4, x2, x1, /2) ->
    `scratch.layer{1..4}_rn` (3x3, no bias) -> fusion from the coarsest map up -> `output_conv1`
    -> bilinear to (14h, 14w) -> `output_conv2` (conv, ReLU, 1x1 conv, ReLU) -> [B, 1, 14h, 14w].
    """

    def __init__(self, in_channels: int, features: int, out_channels: Sequence[int]):
        super().__init__()
        oc = list(out_channels)
        self.projects = nn.ModuleList([nn.Conv2d(in_channels, c, 1) for c in oc])
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(oc[0], oc[0], 4, stride=4), nn.ConvTranspose2d(oc[1], oc[1], 2, stride=2),
            nn.Identity(), nn.Conv2d(oc[3], oc[3], 3, stride=2, padding=1)])
        self.scratch = nn.Module()
        for i, c in enumerate(oc, start=1):
            setattr(self.scratch, f"layer{i}_rn", nn.Conv2d(c, features, 3, padding=1, bias=False))
            setattr(self.scratch, f"refinenet{i}", FusionBlock(features))
        self.scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 1), nn.ReLU(), nn.Identity())

    def forward(self, tokens: Sequence[torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
        h, w = grid
        s = self.scratch
        maps = []
        for i, x in enumerate(tokens):
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[-1], h, w)
            x = self.resize_layers[i](self.projects[i](x))
            maps.append(getattr(s, f"layer{i + 1}_rn")(x))
        l1, l2, l3, l4 = maps
        path = s.refinenet4(l4, size=l3.shape[2:])
        path = s.refinenet3(path, l3, size=l2.shape[2:])
        path = s.refinenet2(path, l2, size=l1.shape[2:])
        path = s.refinenet1(path, l1)
        out = F.interpolate(s.output_conv1(path), size=(PATCH * h, PATCH * w), mode="bilinear", align_corners=True)
        return s.output_conv2(out)


class DepthAnythingV2(nn.Module):
    """Depth-Anything-V2: `pretrained` (DINOv2 backbone) + `depth_head` (DPT)."""

    def __init__(self, encoder: str):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"unknown Depth-Anything-V2 encoder {encoder!r} (known: {sorted(ENCODERS)})")
        self.spec = spec = ENCODERS[encoder]
        self.pretrained = DinoV2Backbone(spec)
        self.depth_head = DPTHead(spec.embed_dim, spec.features, spec.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images [B, 3, 14h, 14w] -> relative inverse depth [B, 14h, 14w], >= 0."""
        if x.shape[-2] % PATCH or x.shape[-1] % PATCH:
            raise ValueError(f"input size {tuple(x.shape[-2:])} is not a multiple of {PATCH}")
        grid = (x.shape[-2] // PATCH, x.shape[-1] // PATCH)
        depth = self.depth_head(self.pretrained(x), grid)
        return F.relu(depth).squeeze(1)


# --------------------------------------------------------------------------------------------
# Loading the official checkpoints


class CheckpointError(ValueError):
    """A weights file is not the Depth-Anything-V2 checkpoint it should be."""


def _fix_hint(spec: WeightsSpec, path: Path) -> str:
    return f"  download {spec.filename} from {spec.url}\n  put it at {path} (or point {spec.key} at where it is)"


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a `.pth` state dict, read with `weights_only=True`.

    `mmap=True` maps the file instead of reading it (inspecting a 1.3 GB file is then cheap; files
    in the legacy non-zip format are read normally). Mapped weights run slower on CPU, so the
    model itself is built from a normal read.
    """
    path = Path(path)
    try:
        state = load_state(path, mmap)
    except Exception as exc:  # noqa: BLE001 (any unreadable file gets the same explanation)
        raise CheckpointError(f"{path}: cannot be read as a PyTorch state dict (truncated or foreign: "
                              f"{describe_load_failure(path, exc)})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a plain state dict of tensors (the official Depth-Anything-V2 "
                              f".pth), got {type(state).__name__}")
    return state


def infer_encoder(state: dict[str, torch.Tensor], path: str | Path = "<state dict>") -> str:
    """vits / vitb / vitl from the tensor shapes (embedding width and number of blocks)."""
    pos = state.get("pretrained.pos_embed")
    if pos is None or pos.ndim != 3:
        raise CheckpointError(f"{path}: no `pretrained.pos_embed` [1, 1370, C]: not a Depth-Anything-V2 checkpoint "
                              f"(first keys: {list(state)[:4]})")
    blocks = {int(k.split(".")[2]) for k in state if k.startswith("pretrained.blocks.")}
    width, depth = pos.shape[-1], (max(blocks) + 1 if blocks else 0)
    for name, e in ENCODERS.items():
        if (e.embed_dim, e.depth) == (width, depth):
            return name
    known = ", ".join(f"{n}: {e.embed_dim}/{e.depth}" for n, e in ENCODERS.items())
    raise CheckpointError(f"{path}: embedding width {width} with {depth} blocks matches no released "
                          f"Depth-Anything-V2 encoder (width/blocks {known})")


def check_checkpoint(path: str | Path, encoder: str, mmap: bool = True) -> dict[str, torch.Tensor]:
    """Read a checkpoint and check it holds `encoder`; the error says how to get the right file."""
    state = read_checkpoint(path, mmap=mmap)
    found = infer_encoder(state, path)
    if found != encoder:
        spec, e = weights_spec(encoder), ENCODERS[found]
        raise CheckpointError(
            f"{path} holds Depth-Anything-V2 {e.title} weights (width {e.embed_dim}, {e.depth} blocks), but encoder "
            f"{encoder!r} is configured (pseudo_depth.encoder); set the encoder to {found!r}, or:\n"
            f"{_fix_hint(spec, Path(path))}")
    return state


def load_depth_anything(path: str | Path, encoder: str | None = None) -> DepthAnythingV2:
    """Build Depth-Anything-V2 from an official checkpoint, strictly, in eval mode on the CPU.

    Args:
        path: `depth_anything_v2_vit{s,b,l}.pth` (a state dict, `pretrained.*` + `depth_head.*`).
        encoder: the expected size; None takes the one the tensor shapes say.

    Raises:
        CheckpointError: unreadable file, wrong size, or keys/shapes that do not match exactly.
    """
    state = read_checkpoint(path) if encoder is None else check_checkpoint(path, encoder, mmap=False)
    encoder = encoder or infer_encoder(state, path)
    with torch.device("meta"):  # no random init: every tensor comes from the file
        model = DepthAnythingV2(encoder)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: does not match the official Depth-Anything-V2 {ENCODERS[encoder].title} "
                              f"layout:\n{str(exc)[:2000]}\n{_fix_hint(weights_spec(encoder), Path(path))}") from exc
    return model.float().eval().requires_grad_(False)
