"""The standard FVD (`fvd16`): clip assembly, the real-feature cache (hit, key change, equal to
a fresh computation), the summary value and clip counts by hand, and the frame-count error."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from syncvp.evaluation import EvaluationError
from syncvp.evaluation import fvd16 as fvd16_module
from syncvp.metrics.fvd import cached_features, first_clip, frechet_distance
from syncvp.metrics.plan import MetricModels, MetricPlan
from syncvp.metrics.protocol import STANDARD, BatchResult
from syncvp.metrics.report import summarise
from tests.evaluation.conftest import NO_WEIGHTS, evaluate_config


def _corners(mean, sd):
    """Four 2-D points with sample mean `mean` and unbiased covariance diag(sd ** 2)."""
    signs = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=np.float64)
    return np.asarray(mean) + signs * np.asarray(sd) * math.sqrt(3) / 2


def test_frechet_distance_of_gaussians_by_hand():
    # 1-D: means 0 and 3, equal variances -> 3^2 = 9; equal means, sds 1 and 3 -> (1 - 3)^2 = 4
    a, b = np.array([[-1.0], [1.0]]), np.array([[2.0], [4.0]])
    assert frechet_distance(a, b) == pytest.approx(9.0, abs=1e-12)
    assert frechet_distance(a, b, dtype=torch.float32) == pytest.approx(9.0, abs=1e-5)
    wide = np.array([[-1.5], [1.5]]) * math.sqrt(2)
    assert frechet_distance(np.array([[-0.5], [0.5]]) * math.sqrt(2), wide) == pytest.approx(4.0, abs=1e-12)
    # 2-D, diagonal covariances: |mu_a - mu_b|^2 + sum (sd_a - sd_b)^2 = (1 + 4) + (1 + 1) = 7,
    # unchanged when both sets are rotated (non-diagonal covariances)
    a, b = _corners([0, 0], [1, 2]), _corners([1, 2], [2, 1])
    assert frechet_distance(a, b) == pytest.approx(7.0, abs=1e-10)
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    rot = np.array([[c, -s], [s, c]])
    assert frechet_distance(a @ rot.T, b @ rot.T) == pytest.approx(7.0, abs=1e-10)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-10)


def test_first_clip_takes_the_first_frames():
    v = torch.arange(20).reshape(1, 1, 20, 1, 1).expand(2, 3, 20, 2, 2)
    assert first_clip(v)[0, 0, :, 0, 0].tolist() == list(range(16))
    with pytest.raises(ValueError, match="needs videos of >= 16 frames, got 7"):
        first_clip(v[:, :, :7])


def test_cached_features_hit_miss_and_equality(tmp_path):
    calls = []

    def compute(value=1.0):
        calls.append(value)
        return np.full((3, 4), value, np.float32)

    path = tmp_path / "cache" / "real.npz"
    first, hit = cached_features(path, "k1", compute)
    assert not hit and calls == [1.0] and path.is_file() and not list(path.parent.glob("*.tmp*"))
    again, hit = cached_features(path, "k1", lambda: compute(2.0))
    assert hit and calls == [1.0] and np.array_equal(again, first)  # read back exactly, not recomputed
    other, hit = cached_features(path, "k2", lambda: compute(2.0))
    assert not hit and calls == [1.0, 2.0] and other[0, 0] == 2.0


def test_summary_value_and_clip_counts_by_hand():
    rng = np.random.default_rng(0)
    fakes = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(1.0, size=(4, 3)).astype(np.float32)]
    real = rng.normal(size=(5, 3)).astype(np.float32)
    results = [BatchResult(video_ids=("a", "b"), fake16={("standard", "rgb"): f}) for f in fakes]
    report = summarise(results, STANDARD, dataset="d", condition="all", real16={"rgb": real})
    rows = {r.metric: r.value for r in report.rows}
    assert rows["fvd16"] == pytest.approx(frechet_distance(np.concatenate(fakes), real))
    assert rows["fvd16_clips"] == 8 and rows["fvd16_real_clips"] == 5
    with pytest.raises(ValueError, match="needs the real clips"):
        summarise(results, STANDARD, dataset="d", condition="all")


def test_fvd16_needs_16_frames(setup, tmp_path):
    from syncvp.evaluation import plan_evaluation

    ds, sampling, paths = setup
    config = evaluate_config(metrics=("ssim", "fvd16"))
    plan = plan_evaluation("synthetic", ds, config, sampling, NO_WEIGHTS, paths)
    assert "fvd16" in plan.metric_plan.skipped  # no I3D file: skipped and listed, whatever the frames
    (tmp_path / "i3d_pretrained_400.pt").write_bytes(b"weights")
    weights = dataclasses.replace(NO_WEIGHTS, i3d=tmp_path / "i3d_pretrained_400.pt")
    with pytest.raises(EvaluationError, match="fvd16 scores 16-frame clips.*context_frames 2 \\+ rollout_frames 5"):
        plan_evaluation("synthetic", ds, config, sampling, weights, paths)


class MeanFeatures(nn.Module):
    """A stand-in feature extractor: per-channel means over time and space (counts its calls)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x.mean(dim=(2, 3, 4)) * self.scale


def test_real_features_are_cached_per_split_and_weights(setup, monkeypatch, tmp_path):
    from syncvp.evaluation import batch, plan_evaluation

    ds, sampling, paths = setup
    plan = plan_evaluation("synthetic", ds, evaluate_config(metrics=("ssim",)), sampling, NO_WEIGHTS, paths)
    weights = tmp_path / "i3d_pretrained_400.pt"
    weights.write_bytes(b"first")
    plan = dataclasses.replace(plan, metric_plan=MetricPlan(requested=("ssim", "fvd16"), weights={"fvd16": weights}))
    extractor = MeanFeatures()
    monkeypatch.setattr(batch, "networks", lambda p: ({}, MetricModels(i3d=extractor)))
    monkeypatch.setattr(fvd16_module, "STANDARD_CLIP", 4)  # the test videos have 7 frames
    monkeypatch.setattr(fvd16_module, "video_features", _features(extractor))
    real, hits = fvd16_module.real_features(plan)
    assert set(real) == {"rgb", "depth"} and hits == {"rgb": False, "depth": False}
    assert real["rgb"].shape == (plan.batches[-1][1], 3)
    calls = extractor.calls
    again, hits = fvd16_module.real_features(plan)
    assert hits == {"rgb": True, "depth": True} and extractor.calls == calls
    assert all(np.array_equal(real[m], again[m]) for m in real)
    weights.write_bytes(b"other weights")  # another I3D file: recomputed
    _, hits = fvd16_module.real_features(plan)
    assert hits == {"rgb": False, "depth": False} and extractor.calls > calls
    assert fvd16_module.cache_file(plan, "rgb").parent == plan.work_dir.parent / "fvd16"


def _features(extractor):
    def features(model, videos, chunk, device="cpu", batch_size=8):
        x = videos.float() / 127.5 - 1
        return extractor(x.expand(-1, 3, -1, -1, -1)).detach()

    return features


def test_score_batch_embeds_context_plus_prediction_clips():
    from syncvp.metrics.fvd import video_features
    from syncvp.metrics.protocol import score_batch

    g = torch.Generator().manual_seed(0)
    gt = {"rgb": torch.randint(0, 256, (2, 3, 18, 8, 8), generator=g, dtype=torch.uint8)}
    preds = [{"rgb": torch.randint(0, 256, (2, 3, 16, 8, 8), generator=g, dtype=torch.uint8)} for _ in range(2)]
    extractor = MeanFeatures()
    result = score_batch(
        gt,
        preds,
        context_frames=2,
        metrics={"rgb": ("fvd16",)},
        protocols=(STANDARD,),
        models=MetricModels(i3d=extractor),
    )
    got = result.fake16[("standard", "rgb")]
    assert got.shape == (4, 3)  # one clip per video and trajectory
    want = [video_features(extractor, torch.cat([gt["rgb"][:, :, :2], p["rgb"]], dim=2)[:, :, :16], 16) for p in preds]
    assert np.allclose(got, torch.cat(want).numpy())
