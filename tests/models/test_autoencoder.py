"""The projected autoencoder: latent geometry of the paper settings, plane layout, factorised
attention, rotary tables, gradients, gray-to-RGB, and the frozen checkpoint round trip."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from syncvp.config import AutoencoderConfig
from syncvp.models.autoencoder import (
    AutoencoderSpec,
    AxisProjection,
    TriplaneAutoencoder,
    load_autoencoder,
    save_autoencoder,
)
from syncvp.models.transformer import SpaceTimeBlock, apply_rotary, axial_rotary, frame_rotary


def spec(**changes) -> AutoencoderSpec:
    base = dict(channels=3, frames=4, resolution=(16, 16), width=16, depth=1, heads=2, head_dim=8, ff_mult=2,
                axis_depth=1, axis_heads=2, axis_head_dim=8, axis_mlp=16, patch_size=4, latent_channels=4,
                gray_to_rgb=False, axis_token="clean")
    base.update(changes)
    return AutoencoderSpec.from_dict(base)


def build(seed: int = 0, **changes) -> TriplaneAutoencoder:
    torch.manual_seed(seed)
    return TriplaneAutoencoder(spec(**changes))


def video(s: AutoencoderSpec, batch: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, s.channels, s.frames, *s.resolution, generator=g) * 2 - 1


@pytest.mark.parametrize("h, w, t, p, c, paper", [
    (128, 128, 8, 4, 4, (4, 1536)),    # Cityscapes future autoencoder
    (128, 128, 2, 4, 4, (4, 1152)),    # Cityscapes context autoencoder
    (256, 256, 8, 8, 16, (16, 1536)),  # OpenDV 256 px
    (32, 48, 3, 4, 2, None),           # non-square
])
def test_latent_shape_of_paper_settings(h, w, t, p, c, paper):
    """Run the encoder at the paper geometry (with a narrow network) and compare the latent it
    produces with the formula L = HW/P^2 + T(H + W)/P [supp]."""
    model = build(channels=3, frames=t, resolution=(h, w), patch_size=p, latent_channels=c, width=8, heads=1)
    with torch.no_grad():
        z = model.encode(video(model.spec, batch=1))
    formula = h * w // p ** 2 + t * (h + w) // p
    assert z.shape == (1, c, formula)
    assert z.shape[1:] == (model.spec.latent_shape.channels, model.spec.latent_shape.length)
    if paper is not None:
        assert z.shape[1:] == paper
    assert z.abs().max() < 1  # tanh bottleneck


def test_reconstruction_shape_range_and_split_merge_identity():
    model = build(resolution=(8, 12), frames=3)
    x = video(model.spec)
    recon, z = model(x)
    assert recon.shape == x.shape and recon.abs().max() < 1
    shape = model.latent_shape
    assert torch.equal(shape.merge(*shape.split(z)), z)
    assert torch.allclose(model.decode(z), recon)


def test_gradients_reach_every_parameter():
    model = build()
    recon, _ = model(video(model.spec))
    recon.square().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []
    assert model.patch_embed.weight.grad.abs().sum() > 0 and model.unpatchify.weight.grad.abs().sum() > 0


def test_patchify_orders_values_row_column_channel():
    model = build(patch_size=2, resolution=(4, 6), frames=2)
    x = video(model.spec, batch=1)
    patches = model.patchify(x)
    assert patches.shape == (1, 2, 2, 3, 2 * 2 * 3)
    t, i, j = 1, 1, 2
    block = x[0, :, t, 2 * i:2 * i + 2, 2 * j:2 * j + 2]           # [C, p1, p2]
    assert torch.equal(patches[0, t, i, j], block.permute(1, 2, 0).flatten())


def _silence(*linears):
    for lin in linears:
        torch.nn.init.zeros_(lin.weight)
        torch.nn.init.zeros_(lin.bias)


def test_divided_attention_mixes_only_along_its_axis():
    torch.manual_seed(0)
    b, t, n, d = 1, 3, 5, 8
    x = torch.randn(b, t, n, d)
    bumped = x.clone()
    bumped[0, 1, 2] += torch.randn(d)   # frame 1, location 2 (not a constant: LayerNorm would remove it)
    time_rope, space_rope = frame_rotary(t, 4), axial_rotary(1, n, 4)
    block = SpaceTimeBlock(d, heads=2, head_dim=4, ff_mult=2)
    _silence(block.space_attn.out, block.ff.down)   # time attention only
    diff = (block(bumped, time_rope, space_rope) - block(x, time_rope, space_rope)).abs().sum(dim=-1)[0]
    assert (diff[:, [0, 1, 3, 4]] == 0).all() and (diff[:, 2] > 1e-3).all()
    block = SpaceTimeBlock(d, heads=2, head_dim=4, ff_mult=2)
    _silence(block.time_attn.out, block.ff.down)    # space attention only
    diff = (block(bumped, time_rope, space_rope) - block(x, time_rope, space_rope)).abs().sum(dim=-1)[0]
    assert (diff[[0, 2]] == 0).all() and (diff[1] > 1e-3).all()


@pytest.mark.parametrize("mode", ["clean", "pvdm"])
def test_axis_token_layout(mode):
    """With the transformer's residual branches silenced the output is the read position plus its
    positional embedding: the token (clean) or the first element (PVDM's quirk)."""
    torch.manual_seed(0)
    proj = AxisProjection(8, length=5, depth=1, heads=2, head_dim=4, mlp=16, mode=mode)
    for attn, ff in zip(proj.transformer.attn, proj.transformer.ff):
        _silence(attn.out, ff.down)
    x = torch.randn(3, 5, 8)
    expected = proj.token[0, 0] + proj.pos[0, 0] if mode == "clean" else x[:, 0] + proj.pos[0, 0]
    assert torch.allclose(proj(x), expected.expand(3, 8))


def test_rotary_tables():
    sin, cos = frame_rotary(6, 8)
    n, j = 5, 6
    angle = n * 10000 ** (-2 * (j % 4) / 8)   # frequency vector duplicated (PVDM)
    assert math.isclose(float(sin[n, j]), math.sin(angle), rel_tol=1e-5)
    # axial table: each neighbouring pair shares one angle, so applying it is a rotation
    rope = axial_rotary(3, 4, 16)
    assert torch.equal(rope[0][:, 0::2], rope[0][:, 1::2])
    q = torch.randn(2, 12, 16)
    assert torch.allclose(apply_rotary(q, rope).norm(dim=-1), q.norm(dim=-1), atol=1e-5)


def test_gray_modality_through_a_three_channel_network():
    gray = build(seed=3, channels=1, gray_to_rgb=True)
    assert gray.patch_embed.in_features == 3 * 16 and gray.unpatchify.out_channels == 3
    x = video(gray.spec)
    recon, z = gray(x)
    assert recon.shape == x.shape
    rgb = TriplaneAutoencoder(dataclasses.replace(gray.spec, channels=3))
    rgb.load_state_dict(gray.state_dict())
    rgb_recon, rgb_z = rgb(x.expand(-1, 3, -1, -1, -1))
    assert torch.allclose(z, rgb_z, atol=1e-6)
    assert torch.allclose(recon, rgb_recon.mean(dim=1, keepdim=True), atol=1e-6)
    plain = build(channels=1)
    assert plain.patch_embed.in_features == 16


def test_frozen_checkpoint_round_trip(tmp_path):
    model = build(seed=5, axis_token="pvdm")
    path = save_autoencoder(tmp_path / "ae.pt", model, {"unit": "x"})
    loaded = load_autoencoder(path)
    x = video(model.spec)
    assert loaded.spec == model.spec and not loaded.training
    assert all(not p.requires_grad for p in loaded.parameters())
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), model.encode(x))
    torch.save({"format": "other"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a syncvp-autoencoder"):
        load_autoencoder(tmp_path / "bad.pt")


def test_spec_file_form_is_the_flat_v1_layout():
    """Files store the spec flat, sizes first, then the `autoencoder` section's fields in order:
    the form written before the spec held an `AutoencoderConfig` (old files load, new ones match)."""
    s = spec(channels=1, gray_to_rgb=True)
    flat = s.to_dict()
    assert list(flat) == ["channels", "frames", "resolution", "width", "depth", "heads", "head_dim", "ff_mult",
                          "axis_depth", "axis_heads", "axis_head_dim", "axis_mlp", "patch_size", "latent_channels",
                          "gray_to_rgb", "axis_token"]
    assert flat["resolution"] == [16, 16] and flat["gray_to_rgb"] is True
    assert AutoencoderSpec.from_dict(flat) == s and isinstance(s.config, AutoencoderConfig)
    with pytest.raises(TypeError):
        AutoencoderSpec.from_dict({**flat, "mystery": 1})
    with pytest.raises(TypeError):
        AutoencoderSpec.from_dict({k: v for k, v in flat.items() if k != "frames"})


def test_wrong_input_shape_is_refused():
    model = build()
    with pytest.raises(ValueError, match="expected a video"):
        model.encode(torch.zeros(1, 3, 5, 16, 16))
