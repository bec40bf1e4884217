"""Guidance: weight 0 is the plain denoiser, the combinations follow docs/method.md §5.2 for any w >= 0."""

from __future__ import annotations

import pytest
import torch

from syncvp.diffusion.guidance import (
    classifier_free_denoiser,
    guidance_passes,
    mask_conditions,
    modality_guidance,
    modality_guided_denoiser,
)


def toy_joint(x, t, cond):
    """A joint 'model' whose output depends non-linearly on every modality's conditioning."""
    total = sum(c.mean(dim=(1, 2), keepdim=True) for c in cond.values())
    return {m: torch.tanh(x[m] * (1 + t.reshape(-1, 1, 1) / 10) + cond[m][:, :, :1] + 0.5 * total) for m in x}


def toy_single(x, t, cond):
    return torch.sin(x + cond.mean(dim=(1, 2), keepdim=True) * t.reshape(-1, 1, 1))


def inputs(names=("r", "d"), batch=3):
    g = torch.Generator().manual_seed(0)
    x = {m: torch.randn(batch, 2, 6, generator=g) for m in names}
    cond = {m: torch.randn(batch, 2, 4, generator=g) + 1 for m in names}
    return x, torch.tensor([1, 5, 9][:batch]), cond


def test_weight_zero_is_the_plain_denoiser():
    x, t, cond = inputs()
    guided = modality_guided_denoiser(toy_joint, cond, ["r", "d"], 0.0)
    plain = toy_joint(x, t, cond)
    out = guided(x, t)
    assert all(torch.equal(out[m], plain[m]) for m in x)
    single = classifier_free_denoiser(toy_single, cond["r"], 0.0)
    assert torch.equal(single(x["r"], t), toy_single(x["r"], t, cond["r"]))


@pytest.mark.parametrize("w", [0.3, 1.0, 2.5])
def test_two_modalities_follow_the_official_four_pass_rule(w):
    """eps_r = o1_r + w (o1_r - o2_r) + w (o1_r - o4_r); eps_d = o1_d + w (o1_d - o2_d) + w (o1_d - o3_d),
    o1 = (c_r, c_d), o2 = (0, 0), o3 = (c_r, 0), o4 = (0, c_d). w >= 1 is applied too."""
    x, t, cond = inputs()
    zeros = {m: torch.zeros_like(c) for m, c in cond.items()}
    o1 = toy_joint(x, t, cond)
    o2 = toy_joint(x, t, zeros)
    o3 = toy_joint(x, t, {"r": cond["r"], "d": zeros["d"]})
    o4 = toy_joint(x, t, {"r": zeros["r"], "d": cond["d"]})
    want_r = o1["r"] + w * (o1["r"] - o2["r"]) + w * (o1["r"] - o4["r"])
    want_d = o1["d"] + w * (o1["d"] - o2["d"]) + w * (o1["d"] - o3["d"])
    for batched in (True, False):
        out = modality_guided_denoiser(toy_joint, cond, ["r", "d"], w, batched=batched)(x, t)
        assert torch.allclose(out["r"], want_r, atol=1e-6) and torch.allclose(out["d"], want_d, atol=1e-6)


def test_missing_modality_and_three_modalities():
    x, t, cond = inputs(("a", "b", "c"))
    assert guidance_passes(["a", "b", "c"]) == [
        frozenset("abc"),
        frozenset(),
        frozenset("bc"),
        frozenset("ac"),
        frozenset("ab"),
    ]
    assert guidance_passes(["a"]) == [frozenset("a"), frozenset()]
    w = 0.7
    out = modality_guided_denoiser(toy_joint, cond, ["a"], w)(x, t)
    o_a = toy_joint(x, t, mask_conditions(cond, ["a"]))
    o_0 = toy_joint(x, t, mask_conditions(cond, []))
    # a is present: its own and the joint term coincide (P \ a = {}); b, c only get the joint term
    assert torch.allclose(out["a"], o_a["a"] + 2 * w * (o_a["a"] - o_0["a"]), atol=1e-6)
    assert torch.allclose(out["b"], o_a["b"] + w * (o_a["b"] - o_0["b"]), atol=1e-6)
    # a missing modality's conditioning is zeroed whatever the caller passed
    plain = modality_guided_denoiser(toy_joint, cond, ["a", "b"], 0.0)(x, t)
    zeroed = toy_joint(x, t, {"a": cond["a"], "b": cond["b"], "c": torch.zeros_like(cond["c"])})
    assert all(torch.equal(plain[m], zeroed[m]) for m in x)


def test_combination_function_matches_manual_passes_for_k3():
    x, t, cond = inputs(("a", "b", "c"))
    present = ["a", "b", "c"]
    outputs = {s: toy_joint(x, t, mask_conditions(cond, s)) for s in guidance_passes(present)}
    out = modality_guidance(outputs, present, 1.5)
    full, empty = outputs[frozenset(present)], outputs[frozenset()]
    for m in present:
        own = outputs[frozenset(present) - {m}]
        want = full[m] + 1.5 * (full[m] - empty[m]) + 1.5 * (full[m] - own[m])
        assert torch.allclose(out[m], want)
    batched = modality_guided_denoiser(toy_joint, cond, present, 1.5)(x, t)
    assert all(torch.allclose(batched[m], out[m], atol=1e-6) for m in present)


@pytest.mark.parametrize("w", [0.5, 3.0])
def test_classifier_free_single_modality(w):
    x, t, cond = inputs()
    want = (1 + w) * toy_single(x["r"], t, cond["r"]) - w * toy_single(x["r"], t, torch.zeros_like(cond["r"]))
    for batched in (True, False):
        got = classifier_free_denoiser(toy_single, cond["r"], w, batched=batched)(x["r"], t)
        assert torch.allclose(got, want, atol=1e-6)


def test_bad_inputs():
    x, t, cond = inputs()
    with pytest.raises(ValueError, match="must be >= 0"):
        modality_guided_denoiser(toy_joint, cond, ["r"], -0.1)
    with pytest.raises(ValueError, match="no conditioning"):
        mask_conditions(cond, ["r", "semantic"])
