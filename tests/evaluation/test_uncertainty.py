"""Spread maps, spread-skill and CRPS of a tiny end-to-end `evaluate` with 2 trajectories."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np

from syncvp.evaluation import BASELINE, evaluate, plan_evaluation
from syncvp.evaluation.compare import DASH
from tests.evaluation.conftest import NO_WEIGHTS, SIZE, evaluate_config, field_dataset


def test_images_write_spread_maps_figures_and_metrics(setup):
    ds, sampling, paths = setup
    config = evaluate_config(conditions=("all",), videos=2, metrics=("ssim", "spread"), protocols=("standard",))
    plan = plan_evaluation("synthetic", ds, config, sampling, NO_WEIGHTS, paths)
    metrics = json.loads(evaluate(plan).read_text())["synthetic"]
    leaf = metrics["all"]["standard"]["rgb"]
    assert {"spread", "spread_std", "rmse_ensemble_mean"} <= set(leaf) and "spread_mean" not in leaf
    assert leaf["spread"] == leaf["spread_std"] / leaf["rmse_ensemble_mean"]
    assert leaf["spread_std"] > 0  # two random-model trajectories differ
    assert "spread" not in metrics[BASELINE]["standard"]["rgb"]  # copy-last has one trajectory: no spread
    folder = plan.out_dir / "uncertainty"
    with np.load(folder / "all.npz") as data:
        assert int(data["trajectories"]) == 2 and list(data["lead"]) == [1, 2, 3, 4, 5]
        for m in ("rgb", "depth"):
            assert data[m].shape == (2, 5, SIZE, SIZE) and data[m].dtype == np.float32
            assert np.all(data[m] >= 0) and np.all(data[m] <= 255)
    assert not (folder / f"{BASELINE}.npz").exists()
    assert iio.imread(folder / "all.png").shape[0] > 2 * 2 * SIZE
    assert (folder / "standard-rgb-spread.png").stat().st_size > 0
    page = (plan.out_dir / "report.html").read_text()
    assert "Uncertainty (uncertainty/*.png)" in page and "standard-rgb-spread" in page
    table = (plan.out_dir / "tables" / "compare.md").read_text()
    row = next(r for r in table.splitlines() if r.startswith("| all → rgb | spread"))
    assert row.split("|")[4].strip() == DASH  # copy-last: no spread
    with open(plan.out_dir / "plots" / "standard-rgb-spread.tsv") as fh:
        assert len(fh.read().splitlines()) == 1 + 5  # one ratio per lead frame


def test_fields_report_crps_in_physical_units_over_land(setup, repo_params):
    _, sampling, paths = setup
    ds = field_dataset(repo_params, paths)
    config = evaluate_config(conditions=("all",), videos=2, metrics=("l1", "spread", "crps"))
    plan = plan_evaluation("era5_synthetic", ds, config, sampling, NO_WEIGHTS, paths)
    metrics = json.loads(evaluate(plan).read_text())["era5_synthetic"]
    for mode in ("paper", "standard"):
        t2m = metrics["all"][mode]["t2m"]
        assert {"crps", "l1_ensemble_mean", "spread", "spread_std", "rmse_ensemble_mean"} <= set(t2m)
        # CRPS <= mean |x_i - y| = the mean over N of the L1 (fair CRPS: minus half the members' spread)
        assert 0 <= t2m["crps"] <= t2m["l1_mean"] + 1e-9
        assert t2m["l1_ensemble_mean"] <= t2m["l1_mean"] + 1e-9  # |mean - y| <= mean |x_i - y|
    with np.load(plan.out_dir / "uncertainty" / "all.npz") as data:
        sea = data["t2m"][..., :3]  # write_field_store: columns 0-2 are sea
        assert np.isnan(sea).all() and np.isfinite(data["t2m"][..., 3:]).all()
        assert np.nanmax(data["sp"]) > 10 * np.nanmax(data["t2m"])  # Pa against K


def test_one_trajectory_skips_the_ensemble_metrics_with_a_reason(setup):
    ds, sampling, paths = setup
    config = evaluate_config(conditions=("all",), videos=2, trajectories=1, metrics=("ssim", "spread"))
    plan = plan_evaluation("synthetic", ds, config, sampling, NO_WEIGHTS, paths)
    assert "N >= 2" in plan.metric_plan.skipped["spread"]
    evaluate(plan)
    skipped = json.loads((plan.out_dir / "skipped.json").read_text())
    assert "trajectories is 1" in skipped["spread"]
    assert not list((plan.out_dir / "uncertainty").iterdir())
