"""Ensemble uncertainty metrics (syncvp.metrics.ensemble) against hand arithmetic."""

import math

import numpy as np
import pytest
import torch

from syncvp.metrics.ensemble import crps, spread_map, spread_skill, spread_skill_ratio


def _ens(*values: float) -> torch.Tensor:
    """N members of a single point: [N, 1, 1, 1, 1, 1]."""
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 1, 1, 1, 1, 1)


def _truth(value: float) -> torch.Tensor:
    return torch.full((1, 1, 1, 1, 1), value, dtype=torch.float64)


def test_crps_two_members_by_hand():
    # x = (0, 4), y = 5: mean |x - y| = (5 + 1) / 2 = 3; sum_ij |x_i - x_j| = 8; 8 / (2 * 2 * 1) = 2
    score, l1 = crps(_ens(0.0, 4.0), _truth(5.0))
    assert score.item() == pytest.approx(1.0)
    assert l1.item() == pytest.approx(3.0)  # |2 - 5|
    # x = (1, 3), y = 2: 1 - 4 / 4 = 0 (the truth in the middle of a symmetric pair)
    assert crps(_ens(1.0, 3.0), _truth(2.0))[0].item() == pytest.approx(0.0)


def test_crps_three_members_by_hand():
    # x = (0, 1, 5), y = 2: mean |x - y| = (2 + 1 + 3) / 3 = 2; sum_ij |x_i - x_j| = 2 (1 + 5 + 4) = 20;
    # fair: 2 - 20 / (2 * 3 * 2) = 1/3 (the standard estimator would give 2 - 20 / 18)
    score, l1 = crps(_ens(5.0, 0.0, 1.0), _truth(2.0))
    assert score.item() == pytest.approx(1.0 / 3.0)
    assert l1.item() == pytest.approx(0.0)  # the mean is 2


def test_crps_of_identical_members_is_the_absolute_error():
    score, l1 = crps(_ens(3.0, 3.0, 3.0), _truth(1.0))
    assert score.item() == pytest.approx(2.0) and l1.item() == pytest.approx(2.0)


def test_spread_map_is_the_unbiased_std():
    assert spread_map(_ens(0.0, 4.0)).item() == pytest.approx(math.sqrt(8.0))  # ((2^2 + 2^2) / 1) ** .5


def _ratio(members, truth, valid=None):
    var, mse = spread_skill(members, truth, valid)
    return spread_skill_ratio(var.mean(), mse.mean()).item()


@pytest.mark.parametrize("n", [2, 5])
def test_spread_skill_of_a_calibrated_ensemble_is_one(n):
    # members and truth drawn from one distribution: with the (N+1)/N correction the ratio is 1
    g = torch.Generator().manual_seed(0)
    draws = 3.0 * torch.randn(n + 1, 4, 1, 3, 64, 64, generator=g, dtype=torch.float64) + 100.0
    assert _ratio(draws[:n], draws[n]) == pytest.approx(1.0, abs=0.02)


def test_spread_skill_of_truth_plus_noise_is_sqrt_n_plus_one():
    # members = truth + iid noise of std s: E[s2] = s^2, E[(m - y)^2] = s^2 / N -> ratio sqrt(N + 1)
    g = torch.Generator().manual_seed(1)
    truth = torch.rand(4, 1, 3, 64, 64, generator=g, dtype=torch.float64) * 255
    members = truth + 5.0 * torch.randn(3, *truth.shape, generator=g, dtype=torch.float64)
    assert _ratio(members, truth) == pytest.approx(2.0, rel=0.02)


def test_spread_skill_of_a_collapsed_ensemble_is_zero():
    members = torch.full((3, 1, 1, 2, 4, 4), 7.0)
    var, mse = spread_skill(members, torch.zeros(1, 1, 2, 4, 4))
    assert torch.all(var == 0) and torch.allclose(mse, torch.full((1, 2), 49.0, dtype=torch.float64))
    assert spread_skill_ratio(var.mean(), mse.mean()).item() == 0.0


def test_masked_points_are_ignored():
    g = torch.Generator().manual_seed(2)
    members = torch.randn(3, 2, 1, 2, 4, 4, generator=g, dtype=torch.float64)
    truth = torch.randn(2, 1, 2, 4, 4, generator=g, dtype=torch.float64)
    valid = torch.ones(2, 1, 2, 4, 4, dtype=torch.bool)
    valid[..., :2] = False  # "sea": the left half
    garbage_m, garbage_t = members.clone(), truth.clone()
    garbage_m[..., :2], garbage_t[..., :2] = float("nan"), 1e9
    for fn in (spread_skill, crps):
        want = fn(members[..., 2:], truth[..., 2:])
        got = fn(garbage_m, garbage_t, valid)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b)


def test_a_single_trajectory_is_an_error():
    with pytest.raises(ValueError, match="N >= 2"):
        crps(_ens(1.0), _truth(1.0))
    with pytest.raises(ValueError, match="N >= 2"):
        spread_skill(_ens(1.0), _truth(1.0))
    with pytest.raises(ValueError, match="N >= 2"):
        spread_map(_ens(1.0))


def test_score_batch_and_summarise_report_the_ensemble_metrics():
    from syncvp.metrics.protocol import STANDARD, score_batch
    from syncvp.metrics.report import summarise
    from syncvp.metrics.weather import FieldSpec

    spec = FieldSpec(250.0, 300.0, "K")  # model space x -> 275 + 25 x
    truth = torch.zeros(1, 1, 3, 2, 2)  # 1 context + 2 predicted frames, 275 K
    valid = torch.ones(1, 1, 3, 2, 2, dtype=torch.bool)
    valid[..., 0, 0] = False
    a, b = torch.full((1, 1, 2, 2, 2), 0.04), torch.full((1, 1, 2, 2, 2), -0.08)  # 276 K and 273 K
    a[..., 0, 0] = 50.0  # garbage at the masked point
    gt = {"t2m": truth, "rgb": torch.zeros(1, 3, 3, 2, 2, dtype=torch.uint8)}
    rgb = [torch.full((1, 3, 2, 2, 2), v, dtype=torch.uint8) for v in (10, 10)]  # a collapsed ensemble
    preds = [{"t2m": a, "rgb": rgb[0]}, {"t2m": b, "rgb": rgb[1]}]
    metrics = {"t2m": ["l1", "spread", "crps"], "rgb": ["ssim", "spread"]}
    result = score_batch(
        gt, preds, context_frames=1, metrics=metrics, protocols=[STANDARD], fields={"t2m": spec}, valid=valid
    )
    rows = summarise([result], STANDARD, dataset="d", condition="all", units={"t2m": "K"}).metrics_json()
    t2m, rgb_leaf = rows["d"]["all"]["standard"]["t2m"], rows["d"]["all"]["standard"]["rgb"]
    # members 276, 273, truth 275: mean 274.5; fair CRPS = (1 + 2) / 2 - 2 * 3 / (2 * 2 * 1) = 0
    assert t2m["crps"] == pytest.approx(0.0, abs=1e-9)
    assert t2m["l1_ensemble_mean"] == pytest.approx(0.5)
    # V = (3/2) * 4.5 (unbiased variance of (276, 273)), E = 0.25 -> ratio sqrt(6.75) / 0.5
    assert t2m["spread_std"] == pytest.approx(math.sqrt(6.75))
    assert t2m["rmse_ensemble_mean"] == pytest.approx(0.5)
    assert t2m["spread"] == pytest.approx(math.sqrt(6.75) / 0.5)
    assert "spread_mean" not in t2m and "crps_mean" not in t2m
    assert rgb_leaf["spread"] == 0.0 and rgb_leaf["rmse_ensemble_mean"] == pytest.approx(10.0)
    assert "crps" not in rgb_leaf  # a field metric
    # one trajectory (a reference such as copy_last): no spread is stored
    single = score_batch(gt, preds[:1], context_frames=1, metrics=metrics, protocols=[STANDARD], fields={"t2m": spec})
    assert not any(metric in ("spread_var", "crps") for _, _, metric in single.values)


def test_plan_metrics_skips_the_ensemble_metrics_for_one_trajectory():
    from types import SimpleNamespace

    from syncvp.metrics.plan import plan_metrics

    weights = SimpleNamespace(i3d=None, lpips_alexnet=None)
    plan = plan_metrics(["ssim", "spread", "crps"], weights, trajectories=1)
    assert plan.available == ("ssim",)
    assert "N >= 2" in plan.skipped["spread"] and "trajectories is 1" in plan.skipped["crps"]
    assert plan_metrics(["spread", "crps"], weights, trajectories=2).available == ("spread", "crps")


def test_three_channel_gray_predictions_score_like_one_channel():
    """Paper mode with gray_to_rgb: identical network channels give the 1-channel ensemble values."""
    from syncvp.metrics.protocol import PAPER, STANDARD, score_batch

    g = torch.Generator().manual_seed(3)
    gt = torch.randint(0, 256, (2, 1, 4, 8, 8), generator=g).to(torch.uint8)
    one = [torch.randint(0, 256, (2, 1, 2, 8, 8), generator=g).to(torch.uint8) for _ in range(3)]
    three = [t.expand(-1, 3, -1, -1, -1).clone() for t in one]
    runs = {PAPER.quantisation: [{"depth": t} for t in three], STANDARD.quantisation: [{"depth": t} for t in one]}
    result = score_batch({"depth": gt}, runs, context_frames=2, metrics={"depth": ["spread"]})
    for part in ("spread_var", "spread_mse"):
        np.testing.assert_allclose(
            result.values[("paper", "depth", part)].frame, result.values[("standard", "depth", part)].frame
        )
