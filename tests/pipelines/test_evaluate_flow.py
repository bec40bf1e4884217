"""The `evaluate` flow under the Prefect test harness: outputs, table rows, per-batch cache."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.evaluation.conftest import NO_WEIGHTS, evaluate_config, setup

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_evaluate_flow_writes_outputs_and_reuses_batches(setup, tiny_params, prefect_harness):
    from pipelines.evaluate import evaluate

    ds, sampling, paths = setup
    config = evaluate_config(conditions=("all",), videos=2, reduce="best", protocols=("paper",))
    run = dataclasses.replace(tiny_params.run, device="cpu")
    args = ("synthetic", ds, config, sampling, NO_WEIGHTS, paths, run)
    metrics_path = evaluate(*args)
    metrics = json.loads(open(metrics_path).read())
    assert set(metrics["synthetic"]) == {"all", "copy_last"} and set(metrics["skipped"]) == {"fvd", "lpips"}
    work = paths.eval_dir("synthetic") / "work"
    files = sorted(work.rglob("batch-*.npz"))
    assert len(files) == 2  # one batch x (all, copy_last)
    stamps = [f.stat().st_mtime_ns for f in files]
    (paths.eval_dir("synthetic") / "metrics.json").unlink()
    assert json.loads(open(evaluate(*args)).read()) == metrics  # second run: cached batches, same numbers
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert [p for p in paths.eval_dir("synthetic").rglob(".*")] == [], "no temporary files left behind"
