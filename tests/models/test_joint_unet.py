"""The joint model: equals K independent stage-1 UNets without cross-attention (and at
initialisation with it), STCA follows the paper's formula, strict stage-1 loading."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from syncvp.config import load_params
from syncvp.models.cross_attention import CrossModalAttention
from syncvp.models.factory import build_joint_unet, build_unet
from syncvp.models.joint_unet import JointUNet, cross_attention_slots
from syncvp.models.triplane import TriplaneShape
from syncvp.models.unet import count_parameters
from syncvp.models.unet_blocks import PlaneLayout, Planes
from tests.models.tiny import CONTEXT, FUTURE, inputs, perturb, tiny_unet

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NAMES = ("rgb", "depth", "semantic")


def branches(k: int = 2) -> dict:
    return {m: perturb(tiny_unet(seed=i), 10 + i) for i, m in enumerate(NAMES[:k])}


def joint(nets: dict, placement: str = "deep", **kw) -> JointUNet:
    torch.manual_seed(5)
    return JointUNet(nets, cross_attention=placement, num_heads=2, norm_groups=4, **kw)


def joint_inputs(names, seed=0):
    x, t, c = {}, None, {}
    for i, m in enumerate(names):
        x[m], t, c[m] = inputs(seed=seed + i)
    return x, t, c


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("placement, split", [("none", True), ("deep", True), ("all", False)])
def test_joint_model_equals_independent_branches(k, placement, split):
    """Exactly: with no cross-attention, and with STCA at initialisation (zero output projection)."""
    nets = branches(k)
    model = joint(nets, placement, split_planes=split)
    x, t, c = joint_inputs(nets)
    with torch.no_grad():
        out = model(x, t, c)
        for m, net in nets.items():
            assert torch.equal(out[m], net(x[m], t, c[m])), m


def test_cross_attention_exchanges_information_once_trained():
    nets = branches(2)
    model = joint(nets, "deep")
    perturb(model.cross, 3)
    x, t, c = joint_inputs(nets)
    with torch.no_grad():
        out = model(x, t, c)
        assert not torch.allclose(out["rgb"], nets["rgb"](x["rgb"], t, c["rgb"]))
        moved = model({"rgb": x["rgb"], "depth": x["depth"] + 1}, t, c)
        assert not torch.allclose(moved["rgb"], out["rgb"])  # depth's input reaches rgb's output
        none = joint(nets, "none")
        a, b = none(x, t, c), none({"rgb": x["rgb"], "depth": x["depth"] + 1}, t, c)
        assert torch.equal(a["rgb"], b["rgb"])
        missing = model(x, t, {"rgb": c["rgb"]})  # no depth context = zeros
        assert torch.equal(missing["rgb"], model(x, t, {"rgb": c["rgb"], "depth": torch.zeros_like(c["depth"])})["rgb"])
    with pytest.raises(ValueError, match="context given for"):
        model(x, t, {"dpeth": c["depth"]})


@pytest.mark.parametrize("k", [2, 3])
def test_cross_inputs_start_as_the_branches_and_then_link_them(k):
    """joint.cross_inputs: zero-initialised, the model equals its branches; its convolution gets a
    gradient; once it is not zero, a modality's output depends on the other modalities' x_t and
    context even without cross-attention, position for position."""
    nets = branches(k)
    model = joint(nets, "none", cross_inputs=True)
    x, t, c = joint_inputs(nets)
    with torch.no_grad():
        out = model(x, t, c)
        for m, net in nets.items():
            assert torch.equal(out[m], net(x[m], t, c[m])), m
    width = nets["rgb"].input_blocks[0].layers[0].conv.in_channels
    conv = model.cross_inputs["rgb"].conv
    assert conv.in_channels == (k - 1) * width and conv.out_channels == nets["rgb"].blocks[0].channels
    sum(v.square().sum() for v in model(x, t, c).values()).backward()
    assert conv.weight.grad.abs().sum() > 0
    perturb(model.cross_inputs, 4)
    with torch.no_grad():
        base = model(x, t, c)
        moved = model({**x, "depth": x["depth"] + 1}, t, c)
        assert not torch.allclose(moved["rgb"], base["rgb"])  # depth's x_t reaches rgb
        recond = model(x, t, {**c, "depth": c["depth"] + 1})
        assert not torch.allclose(recond["rgb"], base["rgb"])  # and depth's context


def test_slots_deep_all_none():
    blocks = tiny_unet().blocks  # in0 in1 in2 in3 mid out0 out1 out2 out3
    assert cross_attention_slots(blocks, "deep") == [False, False, False, True, True, True, True, False, False]
    assert cross_attention_slots(blocks, "all") == [False] + [True] * 8
    assert cross_attention_slots(blocks, "none") == [False] * 9
    three = tiny_unet(channel_mult=(1, 2, 2)).blocks
    kinds = [(b.kind, b.level) for b in three]
    deep2 = [kinds[i] for i, on in enumerate(cross_attention_slots(three, "deep", deep_levels=2)) if on]
    assert deep2 == [("down", 1), ("down", 2), ("middle", 2), ("up", 2), ("up", 2), ("up", 1), ("up", 1)]
    with pytest.raises(ValueError, match="deep_levels"):
        cross_attention_slots(blocks, "deep", deep_levels=3)
    model = joint(branches(2), "deep")
    assert len(model.cross) == len(blocks) and model.slots == cross_attention_slots(blocks, "deep")
    assert [m.out["rgb"].weight.shape[0] for m in model.cross if isinstance(m, CrossModalAttention)] == [16] * 4


def stca_reference(x, y, block, official=False):
    """The paper's STCA for two modalities written out: A = Q_x Q_y^T / sqrt(d) shared by both
    directions; official = the released code's raw view and normalised residual."""
    nx, ny = block.norm["a"](x), block.norm["b"](y)
    conv = lambda m, z: F.conv1d(z, m.weight, m.bias)  # noqa: E731
    qx, qy, vx, vy = conv(block.query["a"], nx), conv(block.query["b"], ny), conv(block.value["a"], nx), conv(block.value["b"], ny)
    b, c, _ = x.shape
    h = block.heads
    if official:
        heads = lambda z: z.contiguous().view(b, -1, h, c // h).transpose(1, 2)  # noqa: E731
        merge = lambda z: z.transpose(1, 2).contiguous().view(b, c, -1)  # noqa: E731
    else:
        heads = lambda z: z.reshape(b, h, c // h, -1).transpose(-1, -2)  # noqa: E731
        merge = lambda z: z.transpose(-1, -2).reshape(b, c, -1)  # noqa: E731
    a = heads(qx) @ heads(qy).transpose(-1, -2) / (c // h) ** 0.5
    out_x = merge(torch.softmax(a, dim=-1) @ heads(vy))
    out_y = merge(torch.softmax(a.transpose(-1, -2), dim=-1) @ heads(vx))
    rx, ry = (nx, ny) if official else (x, y)
    return rx + conv(block.out["a"], out_x), ry + conv(block.out["b"], out_y)


@pytest.mark.parametrize("layout", ["fixed", "official"])
def test_stca_matches_the_paper_formula(layout):
    torch.manual_seed(0)
    block = perturb(CrossModalAttention(["a", "b"], 8, num_heads=2, norm_groups=4, layout=layout), 1)
    x, y = torch.randn(3, 8, 10), torch.randn(3, 8, 7)  # token counts may differ
    got = block.attend({"a": x, "b": y})
    want_x, want_y = stca_reference(x, y, block, official=layout == "official")
    assert torch.allclose(got["a"], want_x, atol=1e-5) and torch.allclose(got["b"], want_y, atol=1e-5)


def test_stca_three_modalities_attend_to_the_others():
    torch.manual_seed(0)
    block = perturb(CrossModalAttention(["a", "b", "c"], 8, num_heads=2, norm_groups=4), 2)
    x = {m: torch.randn(2, 8, n) for m, n in zip("abc", (5, 6, 7))}
    got = block.attend(x)
    conv = lambda m, z: F.conv1d(z, m.weight, m.bias)  # noqa: E731
    heads = lambda z: z.reshape(2, 2, 4, -1).transpose(-1, -2)  # noqa: E731
    normed = {m: block.norm[m](x[m]) for m in x}
    q = {m: heads(conv(block.query[m], normed[m])) for m in x}
    v = {m: heads(conv(block.value[m], normed[m])) for m in x}
    for m in "abc":
        others = [j for j in "abc" if j != m]
        w = torch.softmax(q[m] @ torch.cat([q[j] for j in others], 2).transpose(-1, -2) / 2, dim=-1)
        o = (w @ torch.cat([v[j] for j in others], 2)).transpose(-1, -2).reshape(2, 8, -1)
        assert torch.allclose(got[m], x[m] + conv(block.out[m], o), atol=1e-5)


def test_split_attention_is_plane_by_plane():
    """Split STCA on the (batched) plane groups = the attention applied to each plane pair alone."""
    model = joint(branches(2), "deep", split_planes=True)
    block = perturb(model.cross[3], 4)
    shape = TriplaneShape(16, 8, 8, 4)  # yt and xt travel batched together
    g = torch.Generator().manual_seed(0)
    latents = {m: torch.randn(2, 16, shape.length, generator=g) for m in ("rgb", "depth")}
    h = {m: Planes.from_latent(z, PlaneLayout.of(shape)) for m, z in latents.items()}
    with torch.no_grad():
        out = {m: shape.split(p.to_latent()) for m, p in block(h).items()}
        planes = {m: shape.split(z) for m, z in latents.items()}
        for i in range(3):
            ref = block.attend({m: planes[m][i].flatten(2) for m in planes})
            assert all(torch.allclose(out[m][i].flatten(2), ref[m], atol=1e-5) for m in planes)


def test_stage1_checkpoints_load_strictly_into_the_branches():
    stage1 = branches(2)
    model = joint({m: tiny_unet(seed=99) for m in stage1}, "deep")
    model.load_branches({m: net.state_dict() for m, net in stage1.items()})
    x, t, c = joint_inputs(stage1)
    with torch.no_grad():
        out = model(x, t, c)
        assert all(torch.equal(out[m], stage1[m](x[m], t, c[m])) for m in stage1)


@pytest.mark.parametrize("spoil, words", [
    (lambda sd: sd.pop(next(iter(sd))), "missing keys"),
    (lambda sd: sd.update(extra=torch.zeros(1)), "unexpected keys extra"),
    (lambda sd: sd.update({k: torch.zeros(5) for k in list(sd)[-1:]}), "shape mismatches"),
])
def test_a_mismatching_state_dict_fails_loudly_and_loads_nothing(spoil, words):
    stage1 = branches(2)
    model = joint({m: tiny_unet(seed=99) for m in stage1}, "deep")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    states = {m: dict(net.state_dict()) for m, net in stage1.items()}
    spoil(states["depth"])
    with pytest.raises(ValueError, match=f"branch 'depth'.*{words}"):
        model.load_branches(states)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # rgb untouched too
    with pytest.raises(ValueError, match="stage-1 models given for"):
        model.load_branches({"rgb": states["rgb"]})
    wider = tiny_unet(model_channels=16)
    with pytest.raises(ValueError, match="shape mismatches"):
        model.load_branches({"rgb": states["rgb"], "depth": wider.state_dict()})


def test_shared_branch_weights():
    net = perturb(tiny_unet(), 1)
    model = JointUNet(net, modalities=["rgb", "depth"], cross_attention="none", num_heads=2, norm_groups=4)
    assert model.branch("rgb") is model.branch("depth")
    assert count_parameters(model) == count_parameters(net)
    x, t, c = joint_inputs(["rgb", "depth"])
    with torch.no_grad():
        out = model(x, t, c)
    assert torch.equal(out["depth"], net(x["depth"], t, c["depth"]))
    model.load_branches({"rgb": tiny_unet(seed=3).state_dict()})
    with pytest.raises(ValueError, match="one stage-1 model"):
        model.load_branches({"rgb": net.state_dict(), "depth": net.state_dict()})


def test_every_parameter_receives_a_gradient():
    nets = branches(2)
    model = perturb(joint(nets, "deep"), 7)
    x, t, c = joint_inputs(nets)
    out = model(x, t, c)
    sum(v.square().mean() for v in out.values()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and float(p.grad.abs().max()) > 0, name


def test_factories_from_params_and_mismatches(repo_params):
    shapes = {m: (FUTURE, CONTEXT) for m in ("rgb", "depth")}
    model = build_joint_unet(repo_params.unet, repo_params.joint, shapes)
    assert model.modalities == ("rgb", "depth") and sum(model.slots) == 4
    assert count_parameters(build_unet(repo_params.unet, FUTURE, CONTEXT)) * 2 < count_parameters(model)
    shared = dataclasses.replace(repo_params.joint, shared_weights=True)
    with pytest.raises(ValueError, match="one latent geometry"):
        build_joint_unet(repo_params.unet, shared, {"rgb": (FUTURE, CONTEXT), "depth": (FUTURE, CONTEXT.with_channels(1))})
    with pytest.raises(ValueError, match="deep_levels 3 exceeds"):
        build_joint_unet(repo_params.unet, dataclasses.replace(repo_params.joint, deep_levels=3), shapes)
    with pytest.raises(ValueError, match="share H', W', T"):
        build_joint_unet(repo_params.unet, repo_params.joint,
                         {"rgb": (FUTURE, CONTEXT), "depth": (TriplaneShape(3, 4, 6, 5), CONTEXT)})


def test_paper_configuration_parameter_count():
    """123.43 M, as the authors' SyncVP (docs/method.md §8): two 58.56 M UNets and four STCA blocks of
    512 channels (2 GroupNorms + 6 1x1 convs = 1,577,984 each). Our STCA has exactly the
    authors' parameters; only its wiring and initialisation differ (docs/method.md §7.2-7.4)."""
    params = load_params()
    unet = dataclasses.replace(params.unet, model_channels=256, num_heads=8, norm_groups=32, attention_resolutions=(4, 2, 1))
    cfg = dataclasses.replace(params.joint, num_heads=8, cross_attention="deep", cross_inputs=False)
    shapes = {m: (TriplaneShape(4, 32, 32, 8), TriplaneShape(4, 32, 32, 2)) for m in ("rgb", "depth")}
    with torch.device("meta"):
        model = build_joint_unet(unet, cfg, shapes)
    assert count_parameters(model.cross) == 4 * 1_577_984
    assert count_parameters(model) == 123_434_504
