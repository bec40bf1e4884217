"""The diffusion space (`syncvp.diffusion.target`) and min-SNR loss weights, against hand values."""

from __future__ import annotations

import math

import pytest
import torch

from syncvp.diffusion.process import min_snr_weights
from syncvp.diffusion.schedule import NoiseSchedule
from syncvp.diffusion.target import DiffusionTarget, measure_scale


def test_residual_target_round_trip_and_hand_values():
    target = DiffusionTarget(residual=True, scales={"rgb": 0.5})
    z = torch.tensor([[[0.2, -0.4, 0.9]]])
    c = torch.tensor([[[0.1, -0.5, 0.0]]])
    x0 = target.encode("rgb", z, c)
    assert torch.allclose(x0, torch.tensor([[[0.2, 0.2, 1.8]]]))  # (z - c) / 0.5
    assert torch.allclose(target.decode("rgb", x0, c), z)
    lo, hi = target.bounds("rgb", x0, c)
    assert torch.allclose(lo, torch.tensor([[[-2.2, -1.0, -2.0]]]))  # (-1 - c) / 0.5
    assert torch.allclose(hi, torch.tensor([[[1.8, 3.0, 2.0]]]))  # (1 - c) / 0.5
    # a missing context (zeros) diffuses z / s
    assert torch.allclose(target.encode("rgb", z, torch.zeros_like(z)), z / 0.5)


def test_plain_target_is_identity_with_unit_bounds():
    target = DiffusionTarget()
    z = torch.randn(2, 3, 5)
    assert target.identity
    assert torch.equal(target.encode("m", z, None), z) and torch.equal(target.decode("m", z, None), z)
    lo, hi = target.bounds("m", z, None)
    assert torch.equal(lo, -torch.ones_like(z)) and torch.equal(hi, torch.ones_like(z))


def test_scaled_target_and_saved_form():
    target = DiffusionTarget(residual=False, scales={"depth": 0.25})
    z = torch.full((1, 1, 2), 0.5)
    assert torch.allclose(target.encode("depth", z, None), torch.full((1, 1, 2), 2.0))
    assert target.scale("other") == 1.0
    assert DiffusionTarget.from_dict(target.as_dict()) == target
    assert DiffusionTarget.from_dict(None) == DiffusionTarget()


def test_residual_needs_a_matching_conditioning():
    with pytest.raises(ValueError, match="context_encoder: future"):
        DiffusionTarget(residual=True).encode("m", torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="must be > 0"):
        DiffusionTarget(scales={"m": 0.0})


def test_measure_scale():
    z = torch.tensor([[[1.0, 3.0]]])
    c = torch.tensor([[[0.0, 0.0]]])
    assert measure_scale(z, None, residual=False) == pytest.approx(math.sqrt(2.0))  # std of [1, 3]
    assert measure_scale(z, c + 1.0, residual=True) == pytest.approx(math.sqrt(2.0))  # std of [0, 2]
    with pytest.raises(ValueError, match="no spread"):
        measure_scale(torch.ones(2, 1, 3), None, residual=False)


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_min_snr_weights_hand_values(prediction):
    schedule = NoiseSchedule.from_betas(torch.tensor([0.2, 0.5, 0.9]).numpy())
    abar = schedule.alphas_cumprod
    t = torch.tensor([0, 1, 2])
    w = min_snr_weights(schedule, t, prediction, gamma=1.0)
    snr = abar / (1 - abar)  # 4.0, 0.667, 0.0417
    capped = torch.clamp(snr, max=1.0)
    want = {"eps": capped / snr, "v": capped / (snr + 1), "x0": capped}[prediction]
    assert torch.allclose(w.double(), want, atol=1e-6)
    assert min_snr_weights(schedule, t, prediction, gamma=None) is None
    if prediction == "eps":
        assert w[0] == pytest.approx(0.25) and w[2] == pytest.approx(1.0)  # capped at t=0, plain above


def test_missing_context_uses_its_own_scale_per_sample():
    target = DiffusionTarget(residual=True, scales={"d": 0.5}, missing_scales={"d": 2.0})
    z = torch.tensor([[[0.4, -0.2]], [[0.4, -0.2]]])
    c = torch.tensor([[[0.2, 0.2]], [[0.0, 0.0]]])  # sample 0 observed, sample 1 missing (zeros)
    x0 = target.encode("d", z, c)
    assert torch.allclose(x0[0], torch.tensor([[0.4, -0.8]]))  # (z - c) / 0.5
    assert torch.allclose(x0[1], torch.tensor([[0.2, -0.1]]))  # z / 2
    assert torch.allclose(target.decode("d", x0, c), z)
    lo, hi = target.bounds("d", x0, c)
    assert torch.allclose(lo[1], torch.full((1, 2), -0.5)) and torch.allclose(hi[1], torch.full((1, 2), 0.5))
    assert DiffusionTarget.from_dict(target.as_dict()) == target
    assert target.missing_scale("other") == 1.0 and not target.identity


def test_motion_channels_of_the_conditioning_are_not_part_of_the_residual_base():
    target = DiffusionTarget(residual=True, scales={"rgb": 0.5})
    z = torch.tensor([[[0.2, -0.4, 0.9]]])
    held = torch.tensor([[[0.1, -0.5, 0.0]]])
    cond = torch.cat([held, torch.tensor([[[0.3, 0.3, -0.7]]])], dim=1)  # [held | motion], 2C' channels
    torch.testing.assert_close(target.encode("rgb", z, cond), target.encode("rgb", z, held))
    torch.testing.assert_close(target.decode("rgb", target.encode("rgb", z, cond), cond), z)
    lo, hi = target.bounds("rgb", z, cond)
    torch.testing.assert_close(lo, torch.tensor([[[-2.2, -1.0, -2.0]]]))
    assert measure_scale(
        torch.tensor([[[1.0, 3.0]]]), torch.tensor([[[1.0, 1.0], [5.0, -9.0]]]), residual=True
    ) == pytest.approx(math.sqrt(2.0))  # std of [0, 2]: base only
