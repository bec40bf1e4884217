"""The `evaluate` flow under the Prefect test harness: outputs (references included), the table and
Markdown artifacts, per-batch cache, the run section's speed options in the plan."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.evaluation.conftest import NO_WEIGHTS, evaluate_config, setup  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_evaluate_flow_writes_outputs_and_reuses_batches(setup, tiny_params, prefect_harness, monkeypatch):
    from pipelines import reporting
    from pipelines.evaluate import evaluate

    published = []  # the real Markdown artifact, plus a record of it

    def record(**kwargs):
        published.append(kwargs)
        return create(**kwargs)

    create = reporting.create_markdown_artifact
    monkeypatch.setattr(reporting, "create_markdown_artifact", record)

    ds, sampling, paths = setup
    config = evaluate_config(
        conditions=("all",),
        videos=2,
        reduce="best",
        protocols=("standard",),
        metrics=("ssim", "l2", "alignment"),
        baselines=("single", "autoencoder"),
    )
    run = dataclasses.replace(tiny_params.run, device="cpu")
    args = ("synthetic", ds, config, sampling, NO_WEIGHTS, paths, run)
    metrics_path = evaluate(*args)
    metrics = json.loads(open(metrics_path).read())
    settings = {"all", "single-all", "copy_last", "autoencoder", "ground_truth"}
    assert set(metrics) == {"synthetic"} and set(metrics["synthetic"]) == settings
    assert json.loads((paths.eval_dir("synthetic") / "skipped.json").read_text()) == {}
    assert set(metrics["synthetic"]["single-all"]["standard"]) == {"rgb", "depth", "rgb+depth"}
    work = paths.eval_dir("synthetic") / "work"
    files = sorted(work.rglob("batch-*.npz"))
    assert len(files) == len(settings)  # one batch per setting and reference
    table = (paths.eval_dir("synthetic") / "tables" / "compare.md").read_text()
    page = (paths.eval_dir("synthetic") / "report.html").resolve()
    assert page.read_text().startswith("<!DOCTYPE html>")
    [(key, markdown)] = [(a["key"], a["markdown"]) for a in published]
    assert key == "synthetic-compare" and markdown.startswith(table) and page.as_uri() in markdown
    assert "| all → rgb | ssim ↑ |" in table and "| all → rgb+depth | alignment ↑ |" in table
    stamps = [f.stat().st_mtime_ns for f in files]
    (paths.eval_dir("synthetic") / "metrics.json").unlink()
    assert json.loads(open(evaluate(*args)).read()) == metrics  # second run: cached batches, same numbers
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert [p for p in paths.eval_dir("synthetic").rglob(".*")] == [], "no temporary files left behind"


def test_the_flow_plans_with_the_run_sections_speed_options(setup, tiny_params):
    """run.compile / run.channels_last / run.cuda_graphs reach the plan (and so the sampler's
    denoiser, `networks`)."""
    from pipelines.evaluate import plan_evaluation

    ds, sampling, paths = setup
    config = evaluate_config(conditions=("all",), videos=2, metrics=("ssim",))
    plans = [
        plan_evaluation.fn(
            "synthetic", ds, config, sampling, NO_WEIGHTS, paths, dataclasses.replace(tiny_params.run, **flags)
        )
        for flags in (
            {"device": "cpu", "threads": 1},
            {"device": "cpu", "threads": 1, "compile": True, "channels_last": True, "cuda_graphs": True},
        )
    ]
    assert [(p.compile, p.channels_last, p.cuda_graphs) for p in plans] == [(False, False, False), (True, True, True)]
    assert plans[0].fingerprint != plans[1].fingerprint
