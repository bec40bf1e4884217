"""Evaluation of trained models on a clip-store split (the `evaluate` stage's library).

    plan = plan_evaluation(...)          # checks files, resolves metric weights, fixes batches
    run_batch(plan, setting, k)          # one batch of one setting (model or reference) -> a result file
    run_baseline(plan, k)                # the copy-last-frame baseline of batch k
    report = summarise_plan(plan)        # all batch files -> rows (paper / standard modes)
    compare_table(plan, report)          # the model next to the references, Markdown (tables/compare.md)
    write_outputs(plan, report)          # metrics.json, tables (compare.md), plots, samples

`evaluate(plan)` does all of it in one process, skipping batches whose result file exists.
"""

from __future__ import annotations

from pathlib import Path

from syncvp.evaluation.batch import add_context_noise, networks, protocols, run_baseline, run_batch
from syncvp.evaluation.compare import compare_markdown
from syncvp.evaluation.outputs import compare_table, labels, summarise_plan, table_rows, write_outputs
from syncvp.evaluation.plan import (
    AUTOENCODER,
    BASELINE,
    GROUND_TRUTH,
    EvaluationError,
    EvaluationPlan,
    Setting,
    plan_evaluation,
)
from syncvp.progress import ProgressEvent, ProgressFn, no_progress


def evaluate(plan: EvaluationPlan, progress: ProgressFn = no_progress) -> Path:
    """Run every missing batch of every setting and reference, then write the outputs.

    Returns:
        the path of metrics.json.
    """
    jobs = plan.jobs()
    for done, (label, k) in enumerate(jobs, start=1):
        if not plan.batch_file(label, k).is_file():
            run_batch(plan, plan.setting(label), k)
        progress(ProgressEvent("evaluate", done, len(jobs), message=f"{label} batch {k}"))
    return write_outputs(plan, summarise_plan(plan))


__all__ = [
    "AUTOENCODER",
    "BASELINE",
    "GROUND_TRUTH",
    "EvaluationError",
    "EvaluationPlan",
    "Setting",
    "add_context_noise",
    "compare_markdown",
    "compare_table",
    "evaluate",
    "labels",
    "networks",
    "plan_evaluation",
    "protocols",
    "run_baseline",
    "run_batch",
    "summarise_plan",
    "table_rows",
    "write_outputs",
]
