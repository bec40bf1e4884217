"""Depth-Anything-V2 on timm: official checkpoint layout, strict loading, the official
position-embedding formula, and equality with an independent pure-torch reference."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from syncvp.models.depth_anything import (
    ENCODERS,
    CheckpointError,
    DepthAnythingV2,
    infer_encoder,
    interpolate_pos_embed,
    load_depth_anything,
    weights_spec,
)
from tests.models.depth_anything_weights import DOCUMENTED, official_shapes, random_state_dict, save_random_checkpoint

# --------------------------------------------------------------------------------------------
# An independent reference of the official architecture, written with functional ops only.


def official_pos_embed(pos: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """DINOv2's interpolate_pos_encoding: skipped for 37x37, else scale_factor ((h+0.1)/37, (w+0.1)/37)."""
    n = pos.shape[1] - 1
    g = int(math.sqrt(n))
    if h == g and w == g:
        return pos
    patch = pos[:, 1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
    patch = F.interpolate(patch, scale_factor=((h + 0.1) / g, (w + 0.1) / g), mode="bicubic", antialias=False)
    return torch.cat([pos[:, :1], patch.permute(0, 2, 3, 1).reshape(1, h * w, -1)], dim=1)


def reference_backbone(sd: dict, x: torch.Tensor, encoder: str) -> list[torch.Tensor]:
    p = lambda k: sd[f"pretrained.{k}"]  # noqa: E731
    c, depth = DOCUMENTED[encoder][:2]
    heads = {"vits": 6, "vitb": 12, "vitl": 16}[encoder]
    layers = {"vits": (2, 5, 8, 11), "vitb": (2, 5, 8, 11), "vitl": (4, 11, 17, 23)}[encoder]
    t = F.conv2d(x, p("patch_embed.proj.weight"), p("patch_embed.proj.bias"), stride=14)
    b, _, h, w = t.shape
    t = torch.cat([p("cls_token").expand(b, -1, -1), t.flatten(2).transpose(1, 2)], dim=1)
    t = t + official_pos_embed(p("pos_embed"), h, w)
    ln = lambda v, name: F.layer_norm(v, (c,), p(f"{name}.weight"), p(f"{name}.bias"), eps=1e-6)  # noqa: E731
    outs = []
    for i in range(depth):
        k = f"blocks.{i}."
        y = F.linear(ln(t, k + "norm1"), p(k + "attn.qkv.weight"), p(k + "attn.qkv.bias"))
        q, kk, v = y.reshape(b, -1, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, kk, v).transpose(1, 2).reshape(b, -1, c)  # softmax(q k^T / sqrt(d)) v
        t = t + p(k + "ls1.gamma") * F.linear(y, p(k + "attn.proj.weight"), p(k + "attn.proj.bias"))
        y = F.gelu(F.linear(ln(t, k + "norm2"), p(k + "mlp.fc1.weight"), p(k + "mlp.fc1.bias")))
        t = t + p(k + "ls2.gamma") * F.linear(y, p(k + "mlp.fc2.weight"), p(k + "mlp.fc2.bias"))
        if i in layers:
            outs.append(ln(t, "norm")[:, 1:])
    return outs


def reference_head(sd: dict, feats: list[torch.Tensor], h: int, w: int) -> torch.Tensor:
    q = lambda k: sd[f"depth_head.{k}"]  # noqa: E731
    conv = lambda v, k, **kw: F.conv2d(v, q(f"{k}.weight"), sd.get(f"depth_head.{k}.bias"), **kw)  # noqa: E731
    up = lambda v, **kw: F.interpolate(v, mode="bilinear", align_corners=True, **kw)  # noqa: E731

    def rcu(v, k):
        return v + conv(F.relu(conv(F.relu(v), f"{k}.conv1", padding=1)), f"{k}.conv2", padding=1)

    def fuse(k, v, skip=None, size=None):
        if skip is not None:
            v = v + rcu(skip, f"{k}.resConfUnit1")
        v = rcu(v, f"{k}.resConfUnit2")
        v = up(v, size=size) if size is not None else up(v, scale_factor=2)
        return conv(v, f"{k}.out_conv")

    maps = []
    for i, f in enumerate(feats):
        v = conv(f.transpose(1, 2).reshape(f.shape[0], -1, h, w), f"projects.{i}")
        if i in (0, 1):  # transposed convolutions x4, x2; index 2 is the identity
            v = F.conv_transpose2d(v, q(f"resize_layers.{i}.weight"), q(f"resize_layers.{i}.bias"), stride=(4, 2)[i])
        elif i == 3:
            v = conv(v, "resize_layers.3", stride=2, padding=1)
        maps.append(conv(v, f"scratch.layer{i + 1}_rn", padding=1))
    l1, l2, l3, l4 = maps
    path = fuse("scratch.refinenet4", l4, size=l3.shape[2:])
    path = fuse("scratch.refinenet3", path, l3, size=l2.shape[2:])
    path = fuse("scratch.refinenet2", path, l2, size=l1.shape[2:])
    path = fuse("scratch.refinenet1", path, l1)
    out = up(conv(path, "scratch.output_conv1", padding=1), size=(14 * h, 14 * w))
    out = F.relu(conv(F.relu(conv(out, "scratch.output_conv2.0", padding=1)), "scratch.output_conv2.2"))
    return F.relu(out).squeeze(1)


def reference_model(sd: dict, x: torch.Tensor, encoder: str) -> torch.Tensor:
    return reference_head(sd, reference_backbone(sd, x, encoder), x.shape[-2] // 14, x.shape[-1] // 14)


# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vits_file(tmp_path_factory) -> Path:
    return save_random_checkpoint(tmp_path_factory.mktemp("da") / "depth_anything_v2_vits.pth", "vits", seed=1)


@pytest.fixture(scope="module")
def vits(vits_file):
    return load_depth_anything(vits_file, "vits")


@pytest.mark.parametrize("encoder", ["vits", "vitb", "vitl"])
def test_module_names_and_shapes_are_the_official_ones(encoder):
    with torch.device("meta"):
        model = DepthAnythingV2(encoder)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == official_shapes(encoder)
    assert len(got) == {"vits": 239, "vitb": 239, "vitl": 407}[encoder]
    params = sum(math.prod(s) for s in got.values())
    assert params == {"vits": 24_785_089, "vitb": 97_470_785, "vitl": 335_315_649}[encoder]


@pytest.mark.parametrize("encoder", ["vits", "vitb"])
def test_official_layout_loads_strictly(tmp_path, encoder):
    sd = random_state_dict(encoder, seed=2)
    assert len(sd) == 239
    path = tmp_path / f"depth_anything_v2_{encoder}.pth"
    torch.save(sd, path)
    model = load_depth_anything(path)  # encoder inferred from the shapes
    assert model.spec.name == encoder
    loaded = model.state_dict()
    assert loaded.keys() == sd.keys()
    for key in ("pretrained.blocks.7.attn.qkv.weight", "pretrained.mask_token",
                "depth_head.scratch.refinenet4.out_conv.bias"):
        torch.testing.assert_close(loaded[key], sd[key], rtol=0, atol=0)
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_wrong_size_and_malformed_files_are_explained(tmp_path, vits_file):
    with pytest.raises(CheckpointError) as err:
        load_depth_anything(vits_file, "vitb")
    msg = str(err.value)
    spec = weights_spec("vitb")
    assert "ViT-S" in msg and str(vits_file) in msg and spec.url in msg and spec.key in msg
    sd = random_state_dict("vits")
    del sd["depth_head.scratch.output_conv1.bias"]
    torch.save(sd, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="output_conv1.bias"):
        load_depth_anything(tmp_path / "partial.pth", "vits")
    torch.save({"model": random_state_dict("vits"), "epoch": 3}, tmp_path / "wrapped.pth")
    with pytest.raises(CheckpointError, match="plain state dict"):
        load_depth_anything(tmp_path / "wrapped.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_depth_anything(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="pos_embed"):
        infer_encoder({"x": torch.zeros(1)})


@pytest.mark.parametrize("grid", [(37, 74), (37, 49), (19, 37), (5, 7), (2, 2)])
def test_pos_embed_follows_the_official_formula(grid):
    pos = torch.randn(1, 1370, 32, generator=torch.Generator().manual_seed(0))
    got = interpolate_pos_embed(pos, grid)
    assert got.shape == (1, 1 + grid[0] * grid[1], 32)
    torch.testing.assert_close(got, official_pos_embed(pos, *grid), rtol=0, atol=1e-6)
    torch.testing.assert_close(got[:, 0], pos[:, 0], rtol=0, atol=0)  # the class token is never resized
    assert interpolate_pos_embed(pos, (37, 37)) is pos


def test_timm_dynamic_resize_differs_from_the_official_formula():
    """Why the wrapper exists: timm's own resize (size-based, antialiased, no +0.1 offset) is another function."""
    import timm

    resample_abs_pos_embed = timm.layers.resample_abs_pos_embed
    pos = torch.randn(1, 1370, 32, generator=torch.Generator().manual_seed(0))
    ours = interpolate_pos_embed(pos, (37, 74))
    timm = resample_abs_pos_embed(pos, new_size=(37, 74), old_size=(37, 37), num_prefix_tokens=1)
    assert (ours - timm).abs().max() > 1e-2


def test_518_timm_path_equals_pure_torch_reference(vits, vits_file):
    sd = torch.load(vits_file, map_location="cpu", weights_only=True)
    x = torch.randn(1, 3, 518, 518, generator=torch.Generator().manual_seed(3))
    captured = []
    hook = vits.pretrained.register_forward_hook(lambda module, args, out: captured.append(out))
    with torch.inference_mode():
        ours = vits(x)
        hook.remove()
        ours_feats = captured[0]
        ref_feats = reference_backbone(sd, x, "vits")
        ref = reference_head(sd, ref_feats, 37, 37)
        # timm's own intermediates (no interpolation at 37 x 37) agree as well
        import timm

        vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, img_size=518)
        vit.load_state_dict({k[len("pretrained."):]: v for k, v in sd.items()
                             if k.startswith("pretrained.") and k != "pretrained.mask_token"})
        timm_feats = vit.eval().forward_intermediates(x, indices=[2, 5, 8, 11], norm=True, output_fmt="NLC",
                                                      intermediates_only=True)
    for a, b, c in zip(ours_feats, ref_feats, timm_feats):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
        torch.testing.assert_close(a, c, rtol=0, atol=1e-5)  # timm strips the class token itself
    assert ours.shape == (1, 518, 518) and (ours >= 0).all() and ours.std() > 0.1
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [(70, 98), (98, 42)])
def test_non_square_input_equals_reference(vits, vits_file, size):
    sd = torch.load(vits_file, map_location="cpu", weights_only=True)
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        ours, ref = vits(x), reference_model(sd, x, "vits")
    assert ours.shape == (1, *size) and (ours >= 0).all()
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="multiple of 14"):
        vits(torch.zeros(1, 3, 70, 99))


def test_encoder_table_matches_the_documented_one():
    for name, (c, depth, f, oc) in DOCUMENTED.items():
        e = ENCODERS[name]
        assert (e.embed_dim, e.depth, e.features, e.out_channels) == (c, depth, f, oc)
    assert weights_spec("vitl").url == ("https://huggingface.co/depth-anything/Depth-Anything-V2-Large/resolve/main/"
                                        "depth_anything_v2_vitl.pth")
