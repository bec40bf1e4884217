"""Quantisation, min-max scopes, depth L2 and masked L1 on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from syncvp.io.model_space import field_to_model, image_to_model
from syncvp.metrics.depth import l2, rmse
from syncvp.metrics.images import ground_truth, normalise, quantise
from syncvp.metrics.weather import FieldSpec, masked_l1


def test_quantise_truncates_or_rounds_and_gt_round_trips_exactly():
    x = torch.tensor([-1.5, -1.0, -0.999, 0.0, 0.00392, 0.999, 1.0, 2.0])
    # (x + 1) * 127.5 = [clamped 0, 0, 0.1275, 127.5, 127.9998, 254.87, 255, clamped 255]
    assert quantise(x, "truncate").tolist() == [0, 0, 0, 127, 127, 254, 255, 255]
    assert quantise(x, "round").tolist() == [0, 0, 0, 128, 128, 255, 255, 255]
    values = torch.arange(256, dtype=torch.uint8)
    model = torch.from_numpy(image_to_model(values.numpy()))
    assert torch.equal(ground_truth(model), values)
    assert torch.equal(quantise(values, "truncate"), values)  # uint8 passes through
    # truncation of model-space GT would lose a grey level for some values (why GT is rounded)
    assert not torch.equal(quantise(model, "truncate"), values)


def test_normalise_scopes():
    x = torch.tensor([10, 60, 110], dtype=torch.uint8).reshape(1, 1, 1, 1, 3).repeat(2, 1, 1, 1, 1)
    x[1] = torch.tensor([10, 20, 30], dtype=torch.uint8).reshape(1, 1, 1, 3)
    batch, video, fixed = normalise(x, "batch"), normalise(x, "video"), normalise(x, "range")
    assert batch.flatten().tolist() == pytest.approx([0, 0.5, 1, 0, 0.1, 0.2])
    assert video.flatten().tolist() == pytest.approx([0, 0.5, 1, 0, 0.5, 1])
    assert fixed.flatten().tolist() == pytest.approx([10 / 255, 60 / 255, 110 / 255, 10 / 255, 20 / 255, 30 / 255])
    constant = torch.full((2, 1, 2, 3, 3), 7, dtype=torch.uint8)
    assert torch.equal(normalise(constant, "batch"), torch.zeros(2, 1, 2, 3, 3, dtype=torch.float64))


def test_depth_l2_closed_form():
    # video 0: pred spans 0..255; GT differs from it in one pixel of four, by the full range
    pred = torch.zeros(2, 1, 2, 2, 2, dtype=torch.uint8)
    gt = torch.zeros(2, 1, 2, 2, 2, dtype=torch.uint8)
    pred[0, :, :, :, 1] = 255
    gt[0, :, :, :, 1] = 255
    gt[0, :, :, 1, 0] = 255
    # video 1: pred 51 where GT is 255 (GT shares the batch range 0..255, pred too through video 0)
    pred[1, :, :, 0, :] = 51
    gt[1, :, :, 0, :] = 255
    video, frame = l2(pred, gt, "batch")
    # video 0: per frame one error of 1 in 4 pixels -> RMSE 0.5; video 1: two errors of 0.8 in 4 -> sqrt(0.32)
    assert video.tolist() == pytest.approx([0.5, np.sqrt(0.32)])
    np.testing.assert_allclose(frame.numpy(), [[0.5, 0.5], [np.sqrt(0.32)] * 2])
    # per-video normalisation stretches video 1's pred to 0..1: then it matches GT exactly
    assert l2(pred, gt, "video")[0].tolist() == pytest.approx([0.5, 0.0])
    # per-video RMSE is over all values, not the mean of per-frame RMSEs
    a = torch.zeros(1, 1, 2, 1, 1, dtype=torch.float64)
    b = torch.tensor([0.0, 1.0], dtype=torch.float64).reshape(1, 1, 2, 1, 1)
    v, f = rmse(a, b)
    assert v.item() == pytest.approx(np.sqrt(0.5)) and f.tolist() == [[0.0, 1.0]]


def test_masked_l1_in_physical_units_ignores_invalid_points_exactly():
    spec = FieldSpec(lo=250.0, hi=310.0, units="K")
    rng = np.random.default_rng(0)
    truth = rng.uniform(255, 305, size=(2, 1, 3, 4, 5)).astype(np.float32)
    valid = rng.random((2, 1, 3, 4, 5)) > 0.3
    valid[..., 0, 0] = True  # every frame keeps a valid point
    error = rng.normal(0, 2.0, size=truth.shape).astype(np.float32)
    pred_phys = truth + error
    target = torch.from_numpy(field_to_model(np.where(valid, truth, np.nan), spec.lo, spec.hi))
    pred = torch.from_numpy(field_to_model(pred_phys, spec.lo, spec.hi))
    video, frame = masked_l1(pred, target, torch.from_numpy(valid), spec)
    want_video = [np.abs(error[b])[valid[b]].mean() for b in range(2)]
    want_frame = [[np.abs(error[b, :, t])[valid[b, :, t]].mean() for t in range(3)] for b in range(2)]
    np.testing.assert_allclose(video.numpy(), want_video, rtol=1e-4)
    np.testing.assert_allclose(frame.numpy(), want_frame, rtol=1e-4)
    garbage = pred.clone()
    garbage[torch.from_numpy(~valid)] = 1e6  # anything at invalid points changes nothing
    torch.testing.assert_close(masked_l1(garbage, target, torch.from_numpy(valid), spec)[0], video, rtol=0, atol=0)
    # a uniform model-space offset d is d * (hi - lo) / 2 physical units
    shifted = masked_l1(target + 0.1, target, None, FieldSpec(0.0, 1000.0, "Pa"))[0]
    assert shifted.tolist() == pytest.approx([50.0, 50.0], rel=1e-5)
    none_valid = torch.from_numpy(valid).clone()
    none_valid[1, :, 2] = False
    with pytest.raises(ValueError, match=r"videos \[1\]"):
        masked_l1(pred, target, none_valid, spec)
