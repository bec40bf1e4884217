"""Random Depth-Anything-V2 state dicts in the official key layout, built from the shapes
of the released checkpoints, independently of syncvp's model code."""

from __future__ import annotations

from pathlib import Path

import torch

# encoder -> (width C, blocks, DPT features F, DPT out_channels)
DOCUMENTED = {
    "vits": (384, 12, 64, (48, 96, 192, 384)),
    "vitb": (768, 12, 128, (96, 192, 384, 768)),
    "vitl": (1024, 24, 256, (256, 512, 1024, 1024)),
}


def official_shapes(encoder: str) -> dict[str, tuple[int, ...]]:
    c, depth, f, oc = DOCUMENTED[encoder]
    shapes = {"pretrained.cls_token": (1, 1, c), "pretrained.pos_embed": (1, 1370, c), "pretrained.mask_token": (1, c),
              "pretrained.patch_embed.proj.weight": (c, 3, 14, 14), "pretrained.patch_embed.proj.bias": (c,),
              "pretrained.norm.weight": (c,), "pretrained.norm.bias": (c,)}
    for i in range(depth):
        b = f"pretrained.blocks.{i}."
        shapes.update({b + "norm1.weight": (c,), b + "norm1.bias": (c,), b + "attn.qkv.weight": (3 * c, c),
                       b + "attn.qkv.bias": (3 * c,), b + "attn.proj.weight": (c, c), b + "attn.proj.bias": (c,),
                       b + "ls1.gamma": (c,), b + "norm2.weight": (c,), b + "norm2.bias": (c,),
                       b + "mlp.fc1.weight": (4 * c, c), b + "mlp.fc1.bias": (4 * c,),
                       b + "mlp.fc2.weight": (c, 4 * c), b + "mlp.fc2.bias": (c,), b + "ls2.gamma": (c,)})
    h = "depth_head."
    for i, o in enumerate(oc):
        shapes.update({f"{h}projects.{i}.weight": (o, c, 1, 1), f"{h}projects.{i}.bias": (o,),
                       f"{h}scratch.layer{i + 1}_rn.weight": (f, o, 3, 3)})
    for i, k in ((0, 4), (1, 2), (3, 3)):
        shapes.update({f"{h}resize_layers.{i}.weight": (oc[i], oc[i], k, k), f"{h}resize_layers.{i}.bias": (oc[i],)})
    for i in range(1, 5):
        r = f"{h}scratch.refinenet{i}."
        shapes.update({r + "out_conv.weight": (f, f, 1, 1), r + "out_conv.bias": (f,)})
        for unit in (1, 2):
            for conv in (1, 2):
                shapes.update({f"{r}resConfUnit{unit}.conv{conv}.weight": (f, f, 3, 3),
                               f"{r}resConfUnit{unit}.conv{conv}.bias": (f,)})
    shapes.update({f"{h}scratch.output_conv1.weight": (f // 2, f, 3, 3), f"{h}scratch.output_conv1.bias": (f // 2,),
                   f"{h}scratch.output_conv2.0.weight": (32, f // 2, 3, 3), f"{h}scratch.output_conv2.0.bias": (32,),
                   f"{h}scratch.output_conv2.2.weight": (1, 32, 1, 1), f"{h}scratch.output_conv2.2.bias": (1,)})
    return shapes


def random_state_dict(encoder: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors of the documented shapes, scaled so activations stay O(1) and the depth
    output is positive almost everywhere (so comparisons are not between zeros)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in official_shapes(encoder).items():
        x = torch.randn(shape, generator=g)
        if key.endswith(("norm1.weight", "norm2.weight", "norm.weight")):
            x = 1 + 0.1 * x
        elif key.endswith(".gamma"):
            x = 0.5 + 0.1 * x
        elif key.endswith("output_conv2.2.bias"):
            x = torch.ones(shape)
        elif key.endswith("bias") or key.endswith(("_token", "pos_embed")):
            x = 0.1 * x
        else:  # weights: ~1 / sqrt(fan_in)
            transposed = "resize_layers.0" in key or "resize_layers.1" in key  # (in, out, k, k), stride k
            fan_in = shape[0] if transposed else int(torch.tensor(shape[1:]).prod())
            x = x / fan_in ** 0.5
        out[key] = x
    return out


def save_random_checkpoint(path: Path, encoder: str, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(random_state_dict(encoder, seed), path)
    return path
