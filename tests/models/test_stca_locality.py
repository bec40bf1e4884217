"""The STCA locality prior (`joint.locality`): the bias by hand, the attention it gives against a
hand-written softmax, what it buys (a content-free branch can place the other's content), and
its strict checks."""

from __future__ import annotations

import math

import pytest
import torch

from syncvp.config.diffusion import JointConfig
from syncvp.config.loader import ParamsError
from syncvp.models.cross_attention import CrossModalAttention
from syncvp.models.unet_blocks import PlaneLayout, Planes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def block(k: int = 2, locality: float = 1.0, channels: int = 4, heads: int = 1, **kw) -> CrossModalAttention:
    torch.manual_seed(0)
    return CrossModalAttention(
        [f"m{i}" for i in range(k)], channels, num_heads=heads, norm_groups=1, locality=locality, **kw
    )


def test_position_bias_by_hand():
    """2 x 2 plane, sigma 1: tokens (0,0) (0,1) (1,0) (1,1) in row-major order; -d^2 / 2."""
    bias = block().position_bias(2, 2, torch.device("cpu"))
    expected = torch.tensor(
        [[0.0, -0.5, -0.5, -1.0], [-0.5, 0.0, -1.0, -0.5], [-0.5, -1.0, 0.0, -0.5], [-1.0, -0.5, -0.5, 0.0]]
    )
    assert torch.equal(bias, expected)
    wide = block(locality=2.0).position_bias(1, 3, torch.device("cpu"))  # one row: d = 0, 1, 2 -> -d^2 / 8
    assert torch.allclose(wide[0], torch.tensor([0.0, -1 / 8, -4 / 8]))
    three = block(k=3).position_bias(2, 2, torch.device("cpu"))  # keys: the other two modalities' tokens
    assert torch.equal(three, torch.cat([expected, expected], dim=1))
    assert block(locality=0.0).position_bias(2, 2, torch.device("cpu")) is None


def test_attention_with_the_prior_equals_a_hand_written_softmax():
    """softmax(Q_x Q_y^T / sqrt(d) + bias) V_y, on the fixed layout with one head."""
    torch.manual_seed(1)
    att = block(channels=4, heads=1, normalize=False)
    for m in att.modalities:  # a non-zero output projection, so the attention shows
        torch.nn.init.normal_(att.out[m].weight)
    x = {m: torch.randn(2, 4, 6) for m in att.modalities}  # [N, C, T]: one plane of 2 x 3 tokens
    bias = att.position_bias(2, 3, torch.device("cpu"))
    out = att.attend(x, bias)
    q = {m: torch.einsum("oc,nct->nto", att.query[m].weight[..., 0], x[m]) + att.query[m].bias for m in x}
    v = {m: torch.einsum("oc,nct->nto", att.value[m].weight[..., 0], x[m]) + att.value[m].bias for m in x}
    for m, other in (("m0", "m1"), ("m1", "m0")):
        weights = torch.softmax(q[m] @ q[other].transpose(1, 2) / math.sqrt(4) + bias, dim=-1)
        expected = x[m] + att._project_out(m, weights @ v[other])
        assert torch.allclose(out[m], expected, atol=1e-5)


def test_a_branch_without_content_places_the_other_branchs_content():
    """m0 carries nothing (the same vector at every position), m1 one bright token: without the
    prior m0 receives the same average everywhere; with it, most at the bright token's place."""
    layout = PlaneLayout(((3, 3),), ((0,),))
    flat = torch.ones(1, 4, 3, 3)
    spike = torch.zeros(1, 4, 3, 3)
    spike[0, :, 0, 2] = 5.0
    results = {}
    for sigma in (0.0, 0.7):
        att = block(locality=sigma, normalize=False)
        with torch.no_grad():
            for m in att.modalities:  # values copy the input, the output projection adds it back
                att.value[m].weight.copy_(torch.eye(4)[..., None])
                att.value[m].bias.zero_()
                att.out[m].weight.copy_(torch.eye(4)[..., None])
                att.query[m].weight.zero_()  # no content in the scores at all: position alone
                att.query[m].bias.zero_()
            out = att({"m0": Planes(layout, (flat,), 1), "m1": Planes(layout, (spike,), 1)})
        results[sigma] = out["m0"].tensors[0][0, 0] - 1  # what m0 received, per position
    assert torch.allclose(results[0.0], torch.full((3, 3), 5.0 / 9))  # the plane average, everywhere
    received = results[0.7]
    assert received.argmax() == 2  # row 0, column 2: the bright token's place
    assert received[0, 2] > 2 * received[2, 0]  # and far more there than in the opposite corner


def test_the_prior_needs_split_planes_and_the_fixed_layout():
    with pytest.raises(ValueError, match="needs split_planes and the fixed STCA layout"):
        block(split_planes=False)
    with pytest.raises(ValueError, match="needs split_planes and the fixed STCA layout"):
        block(layout="official")
    with pytest.raises(ValueError, match="locality must be >= 0"):
        block(locality=-1.0)
    block(locality=0.0, layout="official")  # no prior: the official layout is fine


@pytest.mark.parametrize(
    "change, message",
    [
        ({"locality": -0.5}, "must be >= 0"),
        ({"locality": 1.0, "split_planes": False}, "needs split_planes: true"),
        ({"locality": 1.0, "stca_layout": "official"}, "needs stca_layout: fixed"),
    ],
)
def test_joint_config_rejects_a_bad_prior(change, message):
    base = dict(
        cross_attention="deep",
        deep_levels=1,
        split_planes=True,
        normalize=True,
        num_heads=2,
        shared_weights=False,
        same_noise=True,
        stca_layout="fixed",
        locality=0.0,
        cross_inputs=False,
    )
    with pytest.raises((ParamsError, ValueError), match=message):
        JointConfig(**{**base, **change})
