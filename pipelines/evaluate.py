"""The `evaluate` flow: roll out the trained model on a test split and score it (per dataset).

Each batch of each setting (observed modalities, context noise) and of each reference (stage-1
models, copy-last baseline, autoencoder ceiling, ground truth) is one cached task writing one
result file under `<eval>/<ds>/work/<fingerprint>/`; its cache key is the plan (batch, setting,
options), the contents of the store and model files, and the task's source, so a rerun after an
interruption or a change redoes only the batches that changed. The flow publishes the summary
rows (table artifact `<ds>-evaluate`) and tables/compare.md (Markdown artifact `<ds>-compare`,
which names the self-contained page `<eval>/<ds>/report.html` at its end).
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipelines.caching import RESULT_SERIALIZER, item_policy, run_item
from pipelines.reporting import PrefectProgress, publish_markdown, publish_table
from syncvp import evaluation
from syncvp.config import DatasetConfig, PathsConfig, RunConfig, SamplingConfig, WeightsConfig
from syncvp.config.evaluate import EvaluateConfig
from syncvp.config.layout import EvaluationFiles
from syncvp.progress import ProgressEvent
from syncvp.runtime import configure_threads, resolve_device


@task(task_run_name="plan-{dataset}", cache_policy=NO_CACHE)
def plan_evaluation(
    dataset: str,
    config: DatasetConfig,
    evaluate: EvaluateConfig,
    sampling: SamplingConfig,
    weights: WeightsConfig,
    paths: PathsConfig,
    run: RunConfig,
) -> evaluation.EvaluationPlan:
    configure_threads(run.threads)
    plan = evaluation.plan_evaluation(
        dataset,
        config,
        evaluate,
        sampling,
        weights,
        paths,
        device=str(resolve_device(run.device)),
        compile=run.compile,  # the sampler's denoiser
        channels_last=run.channels_last,
        cuda_graphs=run.cuda_graphs,
    )
    for metric, why in plan.metric_plan.skipped.items():
        get_run_logger().warning(f"{metric} skipped: {why}")
    return plan


@task(task_run_name="{label}-batch-{index}", cache_policy=item_policy("files"), result_serializer=RESULT_SERIALIZER)
def evaluate_batch(plan: evaluation.EvaluationPlan, label: str, index: int, files: list[str]) -> str:
    return str(evaluation.run_batch(plan, plan.setting(label), index, warn=get_run_logger().warning))


@task(task_run_name="summarise-{plan.dataset}", cache_policy=NO_CACHE)
def summarise(plan: evaluation.EvaluationPlan) -> tuple[list[dict], str]:
    """(summary rows, compare.md's Markdown) after writing the outputs."""
    report = evaluation.summarise_plan(plan)
    evaluation.write_outputs(plan, report)
    return evaluation.table_rows(report), evaluation.compare_table(plan, report)


@flow(name="evaluate", log_prints=True)
def evaluate(
    dataset: str,
    config: DatasetConfig,
    evaluate: EvaluateConfig,
    sampling: SamplingConfig,
    weights: WeightsConfig,
    paths: PathsConfig,
    run: RunConfig,
) -> str:
    """Evaluate `<models>/<dataset>/joint.pt` (or the stage-1 models) on the configured split and
    write `<eval>/<dataset>/`: metrics.json, tables/, plots/, samples/, uncertainty/, report.html."""
    plan = plan_evaluation(dataset, config, evaluate, sampling, weights, paths, run)
    files = [str(p) for p in plan.input_files()]
    jobs = plan.jobs()
    bar = PrefectProgress(f"{dataset}-evaluate", f"{dataset}: evaluation batches")
    for done, (label, k) in enumerate(jobs, start=1):
        run_item(evaluate_batch, plan.batch_file(label, k), plan, label, k, files)
        bar(ProgressEvent("evaluate", done, len(jobs), message=f"{label} batch {k}"))
    rows, compare = summarise(plan)
    skipped = f"; skipped: {', '.join(plan.metric_plan.skipped)}" if plan.metric_plan.skipped else ""
    publish_table(
        f"{dataset}-evaluate",
        rows,
        f"{dataset}: evaluation ({', '.join(evaluate.protocols)} modes; copy_last = baseline){skipped}",
    )
    page = EvaluationFiles(plan.out_dir).report.resolve()
    publish_markdown(
        f"{dataset}-compare",
        f"{compare}\nThe full report (table, per-frame curves, sample GIFs, params): `{page}` ({page.as_uri()})\n",
        f"{dataset}: the {evaluate.model} model next to the stage-1 models, copy-last and the "
        f"autoencoder ceiling (tables/compare.md){skipped}",
    )
    return str(EvaluationFiles(plan.out_dir).metrics)
