"""UNet building blocks: embedding formula, plane grouping, attention math, batched = looped."""

from __future__ import annotations

import math

import pytest
import torch

from syncvp.models.triplane import TriplaneShape
from syncvp.models.unet_blocks import (
    PlaneAttention,
    PlaneLayout,
    Planes,
    ResBlock,
    attention,
    concat_skip,
    timestep_embedding,
)
from tests.models.tiny import perturb

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_timestep_embedding_formula():
    t = torch.tensor([0, 5, 999])
    emb = timestep_embedding(t, 8)
    assert emb.shape == (3, 8)
    assert torch.equal(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    for k in range(4):
        f = math.exp(-math.log(10000) * k / 4)
        assert float(emb[1, k]) == pytest.approx(math.cos(5 * f), abs=1e-6)
        assert float(emb[1, 4 + k]) == pytest.approx(math.sin(5 * f), abs=1e-6)
    assert timestep_embedding(t, 7).shape == (3, 7) and float(timestep_embedding(t, 7)[2, 6]) == 0.0


@pytest.mark.parametrize("shape, groups", [
    (TriplaneShape(2, 8, 8, 4), ((0,), (1, 2))),        # square latent: xy alone, yt + xt together
    (TriplaneShape(2, 4, 4, 4), ((0, 1, 2),)),          # all three planes alike
    (TriplaneShape(2, 4, 6, 3), ((0,), (1,), (2,))),    # nothing alike
    (TriplaneShape(2, 4, 6, 4), ((0, 1), (2,))),        # xy (4, 6) == yt (T=4, W'=6)
])
def test_planes_group_equal_shapes_and_round_trip(shape, groups):
    layout = PlaneLayout.of(shape)
    assert layout.groups == groups and layout.length == shape.length
    z = torch.randn(3, 5, shape.length)
    planes = Planes.from_latent(z, layout)
    assert len(planes.tensors) == len(groups)
    assert torch.equal(planes.to_latent(), z)
    for group, x in zip(groups, planes.tensors):  # planes stacked along the batch axis, in order
        for k, i in enumerate(group):
            assert torch.equal(x[3 * k:3 * (k + 1)], shape.split(z)[i])


def test_attention_matches_the_legacy_reference():
    """Heads first, then q/k/v (ADM's QKVAttentionLegacy), with q, k scaled by d^-1/4 each."""
    g = torch.Generator().manual_seed(0)
    n, heads, d, length = 2, 4, 3, 7
    qkv = torch.randn(n, 3 * heads * d, length, generator=g)
    q, k, v = qkv.reshape(n * heads, 3 * d, length).split(d, dim=1)
    scale = d ** -0.25
    w = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale), dim=-1)
    want = torch.einsum("bts,bcs->bct", w, v).reshape(n, heads * d, length)
    got = attention(qkv.transpose(1, 2).contiguous(), heads).transpose(1, 2)
    assert torch.allclose(got, want, atol=1e-6)


def test_resblock_resamples_every_plane_axis_with_odd_sizes():
    shape = TriplaneShape(8, 5, 6, 3)
    layout = PlaneLayout.of(shape)
    h = Planes.from_latent(torch.randn(2, 8, shape.length), layout)
    emb = torch.randn(2, 16)
    down = ResBlock(8, 8, 16, norm_groups=4, resample="down")(h, emb)
    assert down.layout.shapes == ((3, 3), (2, 3), (2, 3))  # ceil(5/2), ceil(6/2), ceil(3/2): time halves too
    up = ResBlock(8, 8, 16, norm_groups=4, resample="up")(down, emb)
    assert up.layout.shapes == ((6, 6), (4, 6), (4, 6))
    merged = concat_skip(up, h)
    assert merged.layout.shapes == layout.shapes and merged.channels == 16


@pytest.mark.parametrize("block", ["res", "attn"])
def test_batched_planes_equal_the_per_plane_loop(block):
    shape = TriplaneShape(8, 6, 6, 6)  # all three planes batched together
    z = torch.randn(2, 8, shape.length)
    emb = torch.randn(2, 32)
    torch.manual_seed(0)
    layer = perturb(ResBlock(8, 16, 32, norm_groups=4) if block == "res" else PlaneAttention(8, 2, 4), 1)
    batched = layer(Planes.from_latent(z, PlaneLayout.of(shape)), emb).to_latent()
    looped = layer(Planes.from_latent(z, PlaneLayout(shape.plane_shapes, ((0,), (1,), (2,)))), emb).to_latent()
    assert torch.allclose(batched, looped, atol=1e-5)
    # and each plane alone gives the same as its slot in the batch
    xy = shape.split(z)[0]
    alone = layer(Planes(PlaneLayout((xy.shape[-2:],) * 3, ((0,),)), (xy,), 2), emb).tensors[0]
    assert torch.allclose(alone.flatten(2), batched[..., :36], atol=1e-5)
