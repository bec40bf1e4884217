"""`sampling.precision: bf16`: the sampler's network calls run under bf16 autocast and hand fp32
back; the sampler's update and the autoencoders stay fp32. The samples are the fp32 ones up to
bf16 rounding, and fp32 stays exactly the plain path."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from syncvp.prediction import Predictor
from tests.prediction.conftest import SAMPLING, context_clips, tiny_predictor


def predictor(precision: str, joint: bool = True) -> Predictor:
    return tiny_predictor(joint, precision=precision)


def conv_dtypes(model: nn.Module) -> list[torch.dtype]:
    """Records the output dtype of every Conv2d call of `model`."""
    seen = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    return seen


@pytest.mark.parametrize("joint", [True, False], ids=["joint", "stage-1"])
def test_bf16_samples_are_the_fp32_samples_up_to_rounding(joint):
    ref, fast = predictor("fp32", joint), predictor("bf16", joint)
    seen_ref, seen_fast = conv_dtypes(ref.model), conv_dtypes(fast.model)
    context = context_clips()
    if not joint:
        context = {"depth": context["depth"]}
    a = ref.rollout(context, 3, generator=torch.Generator().manual_seed(0))
    b = fast.rollout(context, 3, generator=torch.Generator().manual_seed(0))
    assert set(seen_ref) == {torch.float32} and set(seen_fast) == {torch.bfloat16}  # autocast reached the network
    for m in a:
        assert b[m].dtype == a[m].dtype == torch.float32 and b[m].shape == a[m].shape
        diff = (b[m] - a[m]).abs()
        assert 0 < float(diff.max())  # not the fp32 path
        assert float(diff.mean()) < 5e-3, f"{m}: mean |bf16 - fp32| = {float(diff.mean()):.4f} (frames in [-1, 1])"


def test_the_denoiser_hands_fp32_back():
    out = _call(predictor("bf16"))()
    assert {v.dtype for v in out.values()} == {torch.float32}


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        predictor("fp16")


def test_fp32_is_the_default():
    assert {f.name: f.default for f in dataclasses.fields(Predictor)}["precision"] == "fp32"
    assert SAMPLING.precision == "fp32"


def _casts(fn) -> int:
    """The number of dtype casts (`aten::_to_copy`) `fn()` dispatches."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += func._overloadpacket is torch.ops.aten._to_copy
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


def _call(p: Predictor):
    cond = {
        m: torch.zeros(2, ae.latent_shape.channels, ae.latent_shape.length) for m, ae in p.context_autoencoders.items()
    }
    x = {m: torch.randn(2, ae.latent_shape.channels, ae.latent_shape.length) for m, ae in p.future_autoencoders.items()}
    denoiser = p._denoiser(cond, frozenset(p.modalities))
    return lambda: denoiser(x, torch.full((2,), 500))


@pytest.mark.parametrize("joint", [True, False], ids=["joint", "stage-1"])
def test_precast_weights_give_the_same_bf16_samples_bit_for_bit_without_the_weight_casts(joint):
    """bf16 weights stored once compute with the very values autocast casts them to at every
    call: the same samples exactly, and one cast less per weight use."""
    from syncvp.prediction.load import LOW_PRECISION_LAYERS, precast_weights

    plain, cast = predictor("bf16", joint), predictor("bf16", joint)
    a, b = plain.model.state_dict(), cast.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same weights to start from
    n = precast_weights(cast.model)
    layers = [m for m in cast.model.modules() if isinstance(m, LOW_PRECISION_LAYERS)]
    assert n == sum(1 for m in layers for _ in m.parameters(recurse=False)) > 0
    assert {p.dtype for m in layers for p in m.parameters(recurse=False)} == {torch.bfloat16}
    norms = [p for m in cast.model.modules() if isinstance(m, nn.GroupNorm) for p in m.parameters()]
    assert norms and {p.dtype for p in norms} == {torch.float32}  # normalization layers left alone
    assert precast_weights(cast.model) == 0  # nothing left to cast

    assert _casts(_call(cast)) < _casts(_call(plain))
    context = context_clips()
    if not joint:
        context = {"depth": context["depth"]}
    ref = plain.rollout(context, 3, generator=torch.Generator().manual_seed(0))
    out = cast.rollout(context, 3, generator=torch.Generator().manual_seed(0))
    for m in ref:
        assert torch.equal(out[m], ref[m]), m


def test_load_predictor_precasts_for_bf16_sampling_only(joint_files):
    from syncvp.prediction import load_predictor

    def dtypes(p: Predictor) -> set[torch.dtype]:
        return {w.dtype for m in p.model.modules() if isinstance(m, nn.Conv2d) for w in m.parameters()}

    assert dtypes(load_predictor(*joint_files, SAMPLING)) == {torch.float32}
    bf16 = load_predictor(*joint_files, dataclasses.replace(SAMPLING, precision="bf16"))
    assert dtypes(bf16) == {torch.bfloat16}
    out = bf16.rollout(context_clips(), 3, generator=torch.Generator().manual_seed(0))
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in out.values())
    with pytest.raises(RuntimeError):  # called without autocast, the bf16 weights meet fp32 inputs
        dataclasses.replace(bf16, precision="fp32").rollout(context_clips(), 3, generator=torch.Generator())


@pytest.mark.gpu
def test_on_cuda_precast_weights_give_the_same_bf16_rollout():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from syncvp.prediction.load import precast_weights

    plain, cast = tiny_predictor(True, "cuda", precision="bf16"), tiny_predictor(True, "cuda", precision="bf16")
    plain.model.requires_grad_(False)  # as loaded: autocast casts the weights at every use
    precast_weights(cast.model)
    ref = plain.rollout(context_clips(), 3, generator=torch.Generator().manual_seed(0))
    out = cast.rollout(context_clips(), 3, generator=torch.Generator().manual_seed(0))
    for m in ref:
        torch.testing.assert_close(out[m], ref[m], rtol=0, atol=1e-6)
