"""Metric weights are resolved before any sampling: null -> skipped with a reason, missing -> error."""

from __future__ import annotations

import pytest
import torch

from syncvp.config.runtime import WeightsConfig
from syncvp.io.weights import MissingWeightsError
from syncvp.metrics.i3d import InceptionI3d
from syncvp.metrics.plan import load_models, plan_metrics
from tests.metrics.conftest import i3d_state


def weights(**paths) -> WeightsConfig:
    base = dict(
        depth_anything_vits=None,
        depth_anything_vitb=None,
        depth_anything_vitl=None,
        i3d=None,
        lpips_alexnet=None,
        lpips_vgg16=None,
    )
    return WeightsConfig(**{**base, **paths})


def test_null_weights_skip_their_metrics_with_the_reason():
    plan = plan_metrics(["fvd", "ssim", "lpips", "l2", "ssim"], weights())
    assert plan.requested == ("fvd", "ssim", "lpips", "l2")
    assert plan.available == ("ssim", "l2")
    assert "weights.i3d is null" in plan.skipped["fvd"] and "i3d_pretrained_400.pt" in plan.skipped["fvd"]
    assert "1fBNl3TS0LA5FEhZv5nMGJs2_7qQmvTmh" in plan.skipped["fvd"]
    assert "weights.lpips_alexnet is null" in plan.skipped["lpips"]
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in plan.skipped["lpips"]
    assert plan.select({"rgb": ["fvd", "ssim", "lpips"], "depth": ["l2"]}) == {"rgb": ("ssim",), "depth": ("l2",)}
    models = load_models(plan)
    assert models.i3d is None and models.lpips is None


def test_configured_but_missing_files_fail_naming_file_and_source(tmp_path):
    with pytest.raises(
        MissingWeightsError,
        match=r"(?s)not found: .*nowhere/i3d\.pt.*download i3d_pretrained_400\.pt from Google Drive id",
    ):
        plan_metrics(["ssim", "fvd"], weights(i3d=tmp_path / "nowhere/i3d.pt"))
    with pytest.raises(MissingWeightsError, match=r"alexnet-owt-7be5be79\.pth from https://download\.pytorch\.org"):
        plan_metrics(["lpips"], weights(lpips_alexnet=tmp_path / "alex.pth"))
    with pytest.raises(ValueError, match=r"unknown metrics \['iou'\]"):
        plan_metrics(["ssim", "iou"], weights())


def test_configured_files_load_before_any_sampling(tmp_path, lpips_package, alexnet_file):
    i3d = tmp_path / "i3d_pretrained_400.pt"
    torch.save(i3d_state(), i3d)
    plan = plan_metrics(["fvd", "lpips", "ssim"], weights(i3d=i3d, lpips_alexnet=alexnet_file))
    assert plan.skipped == {} and plan.weights == {"fvd": i3d, "lpips": alexnet_file}
    models = load_models(plan)
    assert isinstance(models.i3d, InceptionI3d) and models.lpips is not None
    torch.save({"not": torch.zeros(1)}, i3d)
    with pytest.raises(ValueError, match="is not i3d_pretrained_400.pt"):
        load_models(plan_metrics(["fvd"], weights(i3d=i3d)))
