"""Fast paths equal the plain computation: fused attention (every attention of every network
against an explicit softmax(Q K^T / sqrt(d)) V), channels-last convolutions, torch.compile, bf16
autocast (stated tolerance), pinned DataLoader memory."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from syncvp.training.fastpath import prepare_model
from tests.models.test_autoencoder import build as build_autoencoder
from tests.models.test_autoencoder import spec as autoencoder_spec
from tests.models.test_autoencoder import video
from tests.models.test_joint_unet import branches, joint, joint_inputs
from tests.models.tiny import inputs, perturb, tiny_unet

pytestmark = pytest.mark.usefixtures("one_torch_thread")
MODELS = Path(__file__).resolve().parents[2] / "syncvp" / "models"
SDPA = F.scaled_dot_product_attention


def reference_attention(q, k, v, *args, attn_mask=None, **kwargs):
    """softmax(q k^T / sqrt(d) + attn_mask) v written out ([..., S, d] inputs; an additive float
    mask, the locality prior's); no dropout / scale / causal option."""
    assert not args and not kwargs, "an attention call with options the reference does not model"
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if attn_mask is not None:
        assert attn_mask.dtype.is_floating_point, "the reference models additive float masks only"
        scores = scores + attn_mask
    return torch.softmax(scores, dim=-1) @ v


def networks():
    """(name, forward) of every network with attention: autoencoder, stage-1 UNet, joint UNet."""
    ae = perturb(build_autoencoder(), 3)
    clip = video(autoencoder_spec())
    unet = perturb(tiny_unet(), 4)
    x, t, c = inputs()
    model = perturb(joint(branches(2)), 5)
    local = perturb(joint(branches(2), locality=1.0), 6)  # the STCA position prior: an additive mask
    jx, jt, jc = joint_inputs(("rgb", "depth"))
    return [("autoencoder", lambda: ae(clip)[0]), ("unet", lambda: unet(x, t, c)),
            ("joint", lambda: torch.cat([v.flatten() for v in model(jx, jt, jc).values()])),
            ("joint, locality", lambda: torch.cat([v.flatten() for v in local(jx, jt, jc).values()]))]


@pytest.mark.parametrize("index", range(4))
def test_fused_attention_equals_the_explicit_formula(index, monkeypatch):
    name, forward = networks()[index]
    calls = []
    with torch.no_grad():
        fused = forward()
        monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or reference_attention(*a, **k))
        explicit = forward()
    assert calls, f"{name}: no attention ran"
    assert torch.allclose(fused, explicit, atol=2e-5, rtol=1e-4), (name, (fused - explicit).abs().max())


def test_no_network_computes_attention_by_hand():
    """Every attention in syncvp/models goes through F.scaled_dot_product_attention (no softmax)."""
    for path in MODELS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                assert name != "softmax", f"{path.name}:{node.lineno} computes a softmax by hand"


def _forward_backward(model, forward):
    model.zero_grad(set_to_none=True)
    out = forward()
    out.square().mean().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_channels_last_unet_equals_the_plain_one():
    plain, fast = perturb(tiny_unet(), 4), perturb(tiny_unet(), 4)
    prepare_model(fast, channels_last=True, compile=False)
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for p in fast.parameters())
    x, t, c = inputs()
    out_a, grads_a = _forward_backward(plain, lambda: plain(x, t, c))
    out_b, grads_b = _forward_backward(fast, lambda: fast(x, t, c))
    assert torch.allclose(out_a, out_b, atol=1e-5)
    for n in grads_a:
        assert torch.allclose(grads_a[n], grads_b[n], atol=1e-5, rtol=1e-4), n


def test_channels_last_keeps_state_dict_keys_and_values():
    plain, fast = tiny_unet(), prepare_model(tiny_unet(), channels_last=True, compile=False)
    a, b = plain.state_dict(), fast.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.gpu
def test_compiled_network_equals_eager():
    """torch.compile (inductor) of a tiny UNet on CUDA: same output and gradients within 1e-4;
    `nn.Module.compile` keeps the state-dict keys (checkpoints unchanged). GPU only: compiling
    this tiny UNet with inductor on the 2-core CPU ran for over 9 minutes."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    cuda = torch.device("cuda")
    eager, compiled = perturb(tiny_unet(), 4).to(cuda), perturb(tiny_unet(), 4).to(cuda)
    prepare_model(compiled, channels_last=False, compile=True)
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    x, t, c = (v.to(cuda) for v in inputs())
    out_a, grads_a = _forward_backward(eager, lambda: eager(x, t, c))
    out_b, grads_b = _forward_backward(compiled, lambda: compiled(x, t, c))
    assert torch.allclose(out_a, out_b, atol=1e-4)
    for n in grads_a:
        assert torch.allclose(grads_a[n], grads_b[n], atol=1e-4, rtol=1e-3), n


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize("index", range(3))
def test_bf16_autocast_stays_within_the_stated_tolerance(index):
    """bf16 (8-bit mantissa, ~3e-3 per rounding) through a whole network: relative L2 error of
    the output <= 3e-2 (CPU autocast here; the CUDA path is the same dtype policy)."""
    name, forward = networks()[index]
    with torch.no_grad():
        exact = forward()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = forward()
    assert 0 < _relative(low, exact) <= 3e-2, (name, _relative(low, exact))


@pytest.mark.gpu
def test_cuda_fast_paths_equal_the_plain_path():
    """On a GPU: channels-last + bf16 autocast (flash/memory-efficient SDPA kernels) against
    fp32 on the same device, and pinned batches equal to pageable ones."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from syncvp.training.data import BatchStream
    from tests.training.test_distributed import Table

    cuda = torch.device("cuda")
    plain, fast = perturb(tiny_unet(), 4).to(cuda), perturb(tiny_unet(), 4).to(cuda)
    prepare_model(fast, channels_last=True, compile=False)
    x, t, c = (v.to(cuda) for v in inputs())
    with torch.no_grad():
        exact = plain(x, t, c)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = fast(x, t, c)
    assert _relative(low, exact) <= 3e-2
    pinned = next(iter(BatchStream(Table(), 4, seed=0, pin_memory=True)))
    pageable = next(iter(BatchStream(Table(), 4, seed=0)))
    assert pinned[0].is_pinned() and torch.equal(pinned[0], pageable[0])
