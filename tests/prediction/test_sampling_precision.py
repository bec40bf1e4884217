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
    p = predictor("bf16")
    cond = {
        m: torch.zeros(2, ae.latent_shape.channels, ae.latent_shape.length) for m, ae in p.context_autoencoders.items()
    }
    x = {m: torch.randn(2, ae.latent_shape.channels, ae.latent_shape.length) for m, ae in p.future_autoencoders.items()}
    out = p._denoiser(cond, frozenset(p.modalities))(x, torch.full((2,), 500))
    assert {v.dtype for v in out.values()} == {torch.float32}


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        predictor("fp16")


def test_fp32_is_the_default():
    assert {f.name: f.default for f in dataclasses.fields(Predictor)}["precision"] == "fp32"
    assert SAMPLING.precision == "fp32"
