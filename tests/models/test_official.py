"""Official PVDM/SyncVP autoencoder checkpoints load strictly after renaming (random weights in
the official key layout, written here from the published module structure)."""

from __future__ import annotations

import pytest
import torch

from syncvp.models.autoencoder import AutoencoderSpec
from syncvp.models.official import convert_official, load_official


def official_state(c_in: int, d: int, depth: int, heads: int, hd: int, frames: int, grid: tuple[int, int],
                   latent: int, patch: int, axis_depth: int = 4, axis_heads: int = 4, mlp: int = 512) -> dict:
    """Random tensors under the names and shapes of PVDM's ViTAutoencoder (SyncVP variant)."""
    g = torch.Generator().manual_seed(0)
    shapes = {"encoder.to_patch_embedding.weight": (d, c_in * patch ** 2), "encoder.to_patch_embedding.bias": (d,),
              "to_pixel.1.weight": (d, c_in, patch, patch), "to_pixel.1.bias": (c_in,), "coords": (frames, 1)}
    for part in ("encoder", "decoder"):
        shapes[f"{part}.frame_rot_emb.inv_freqs"] = (hd // 2,)
        shapes[f"{part}.image_rot_emb.scales"] = (hd // 4,)
        for i in range(depth):
            for sub in ("0", "1"):
                p = f"{part}.layers.{i}.{sub}"
                shapes.update({f"{p}.norm.weight": (d,), f"{p}.norm.bias": (d,), f"{p}.fn.to_qkv.weight": (3 * heads * hd, d),
                               f"{p}.fn.to_out.0.weight": (d, heads * hd), f"{p}.fn.to_out.0.bias": (d,)})
            p = f"{part}.layers.{i}.2"
            shapes.update({f"{p}.norm.weight": (d,), f"{p}.norm.bias": (d,), f"{p}.fn.net.0.weight": (8 * d, d),
                           f"{p}.fn.net.0.bias": (8 * d,), f"{p}.fn.net.3.weight": (d, 4 * d), f"{p}.fn.net.3.bias": (d,)})
    lengths = {"xy": frames, "yt": grid[0], "xt": grid[1]}
    for plane, n in lengths.items():
        shapes.update({f"{plane}_token": (1, 1, d), f"{plane}_pos_embedding": (1, n + 1, d),
                       f"pre_{plane}.weight": (latent, d, 1, 1), f"pre_{plane}.bias": (latent,),
                       f"post_{plane}.weight": (d, latent, 1, 1), f"post_{plane}.bias": (d,)})
        for i in range(axis_depth):
            p = f"{plane}_quant_attn.layers.{i}"
            shapes.update({f"{p}.0.norm.weight": (d,), f"{p}.0.norm.bias": (d,),
                           f"{p}.0.fn.to_qkv.weight": (3 * axis_heads * (d // 8), d),
                           f"{p}.0.fn.to_out.0.weight": (d, axis_heads * (d // 8)), f"{p}.0.fn.to_out.0.bias": (d,),
                           f"{p}.1.norm.weight": (d,), f"{p}.1.norm.bias": (d,), f"{p}.1.fn.net.0.weight": (mlp, d),
                           f"{p}.1.fn.net.0.bias": (mlp,), f"{p}.1.fn.net.3.weight": (d, mlp), f"{p}.1.fn.net.3.bias": (d,)})
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


@pytest.mark.parametrize("channels, gray_to_rgb, resolution", [(3, False, (16, 16)), (1, True, (16, 24))])
def test_official_layout_loads_strictly(channels, gray_to_rgb, resolution):
    d, frames, patch = 32, 4, 4
    grid = (resolution[0] // patch, resolution[1] // patch)
    state = official_state(3, d, depth=2, heads=2, hd=16, frames=frames, grid=grid, latent=4, patch=patch)
    spec = AutoencoderSpec.from_dict(dict(channels=channels, frames=frames, resolution=resolution, width=d, depth=2,
                                          heads=2, head_dim=16, ff_mult=4, axis_depth=4, axis_heads=4,
                                          axis_head_dim=d // 8, axis_mlp=512, patch_size=patch, latent_channels=4,
                                          gray_to_rgb=gray_to_rgb, axis_token="pvdm"))
    model = load_official(state, spec)
    mine = model.state_dict()
    assert torch.equal(mine["encoder.blocks.1.space_attn.qkv.weight"], state["encoder.layers.1.1.fn.to_qkv.weight"])
    assert torch.equal(mine["decoder.blocks.0.ff.down.bias"], state["decoder.layers.0.2.fn.net.3.bias"])
    assert torch.equal(mine["project.yt.pos"], state["yt_pos_embedding"])
    assert torch.equal(mine["to_latent.xt.weight"], state["pre_xt.weight"][:, :, 0, 0])
    assert torch.equal(mine["project.xy.transformer.ff.3.up.weight"], state["xy_quant_attn.layers.3.1.fn.net.0.weight"])
    x = torch.rand(1, channels, frames, *resolution) * 2 - 1
    with torch.no_grad():
        assert model(x)[0].shape == x.shape


def test_unknown_keys_and_clean_mode_are_refused():
    with pytest.raises(KeyError, match="unexpected key"):
        convert_official({"encoder.mystery": torch.zeros(1)})
    spec = AutoencoderSpec.from_dict(dict(channels=3, frames=2, resolution=(8, 8), width=16, depth=1, heads=1,
                                          head_dim=8, ff_mult=4, axis_depth=1, axis_heads=1, axis_head_dim=2,
                                          axis_mlp=8, patch_size=4, latent_channels=2, gray_to_rgb=False,
                                          axis_token="clean"))
    with pytest.raises(ValueError, match="axis_token='pvdm'"):
        load_official({}, spec)
