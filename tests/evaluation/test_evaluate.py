"""The evaluate library on tiny random models: outputs, baseline, skipped metrics, resume,
determinism, noise, missing-modality conditions, stage-1 models, errors before sampling."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from syncvp.config.evaluate import NoiseConfig
from syncvp.evaluation import (BASELINE, EvaluationError, add_context_noise, evaluate, plan_evaluation, run_batch,
                               summarise_plan)
from syncvp.io.weights import MissingWeightsError
from syncvp.metrics.protocol import BatchResult
from syncvp.models.export import ModelFileError
from tests.evaluation.conftest import NO_WEIGHTS, VIDEOS, evaluate_config


def _plan(setup, weights=NO_WEIGHTS, **changes):
    ds, sampling, paths = setup
    return plan_evaluation("synthetic", ds, evaluate_config(**changes), sampling, NO_WEIGHTS if weights is None else weights, paths)


def test_outputs_keys_baseline_and_skipped(setup):
    plan = _plan(setup)
    path = evaluate(plan)
    metrics = json.loads(path.read_text())
    assert set(metrics["skipped"]) == {"fvd", "lpips"}  # weights null: listed, never faked
    settings = metrics["synthetic"]
    assert set(settings) == {"all", "depth", BASELINE}
    for label in settings:
        for mode in ("paper", "standard"):
            assert set(settings[label][mode]) == {"rgb", "depth"}
            assert set(settings[label][mode]["rgb"]) == {"ssim", "psnr", "l2", "ssim_mean", "psnr_mean", "l2_mean"}
    # the baseline copies exact GT frames, so its SSIM is below 1 only because the videos move
    assert 0 < settings[BASELINE]["standard"]["rgb"]["ssim"] < 1
    out = plan.out_dir
    with open(out / "tables" / "videos.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["video"] for r in rows} == {f"vid{i}" for i in range(VIDEOS)}
    with open(out / "plots" / "paper-rgb-ssim.tsv") as fh:
        table = list(csv.reader(fh, delimiter="\t"))
    assert table[0] == ["frame", "all", "depth", BASELINE] and len(table) == 1 + plan.config.rollout_frames
    assert (out / "samples" / "all.png").stat().st_size > 0 and (out / "samples" / "all.gif").stat().st_size > 0
