"""Evaluation of trained models on a clip-store split (the `evaluate` stage's library).

    plan = plan_evaluation(...)          # checks files, resolves metric weights, fixes batches
    run_batch(plan, setting, k)          # one batch of one setting -> a result file (resumable)
    run_baseline(plan, k)                # the copy-last-frame baseline of batch k
    report = summarise_plan(plan)        # all batch files -> rows (paper / standard modes)
    write_outputs(plan, report)          # metrics.json, tables, plots, samples

`evaluate(plan)` does all of it in one process, skipping batches whose result file exists.
"""

from __future__ import annotations

from pathlib import Path

from syncvp.evaluation.batch import add_context_noise, networks, protocols, run_baseline, run_batch
from syncvp.evaluation.outputs import labels, summarise_plan, table_rows, write_outputs
from syncvp.evaluation.plan import BASELINE, EvaluationError, EvaluationPlan, Setting, plan_evaluation
from syncvp.progress import ProgressEvent, ProgressFn, no_progress


def evaluate(plan: EvaluationPlan, progress: ProgressFn = no_progress) -> Path:
    """Run every missing batch of every setting and the baseline, then write the outputs.

    Returns:
        the path of metrics.json.
    """
    jobs = [(s, k) for s in (*plan.settings, None) for k in range(len(plan.batches))]
    for done, (setting, k) in enumerate(jobs, start=1):
        label = BASELINE if setting is None else setting.label
        if not plan.batch_file(label, k).is_file():
            run_baseline(plan, k) if setting is None else run_batch(plan, setting, k)
        progress(ProgressEvent("evaluate", done, len(jobs), message=f"{label} batch {k}"))
    return write_outputs(plan, summarise_plan(plan))


__all__ = ["BASELINE", "EvaluationError", "EvaluationPlan", "Setting", "add_context_noise", "evaluate", "labels",
           "networks", "plan_evaluation", "protocols", "run_baseline", "run_batch", "summarise_plan", "table_rows",
           "write_outputs"]
