"""Training flows. `train_autoencoder`: one projected autoencoder per flow run (a dataset x
modality x clip-length unit); `train_autoencoder_worker`: what the other ranks of a torchrun
launch of the stage call (`stages._entry`).

Training is not cached by Prefect (DVC decides when a stage reruns); it resumes from its own
checkpoints in `<models>/<unit>/work` instead, so a rerun after an interruption carries on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipelines.live import LiveCurves
from pipelines.reporting import PrefectProgress, publish_table
from syncvp.config import AutoencoderConfig, DatasetConfig, PathsConfig, RunConfig, TrainAutoencoderConfig
from syncvp.config.layout import AutoencoderFiles
from syncvp.progress import CURVE, HELD_OUT, ProgressEvent
from syncvp.training import autoencoder_job, autoencoder_train


@task(task_run_name="plan-{unit}", cache_policy=NO_CACHE)
def plan_autoencoder(
    unit: str,
    dataset: DatasetConfig,
    autoencoder: AutoencoderConfig,
    train: TrainAutoencoderConfig,
    run: RunConfig,
    paths: PathsConfig,
    lpips_vgg16: Path | None,
) -> autoencoder_job.AutoencoderJob:
    return autoencoder_job.plan(
        unit, dataset=dataset, autoencoder=autoencoder, train=train, run=run, paths=paths, lpips_vgg16=lpips_vgg16
    )


def _report(job: autoencoder_job.AutoencoderJob):
    """Progress artifact + throttled log lines, every held-out evaluation in the log, and the
    curves logged step-wise with DVCLive (`<models>/<unit>/dvclive/`)."""
    bar = PrefectProgress(f"{job.unit}-train", f"Training the autoencoder {job.unit}")
    logger = get_run_logger()
    live = LiveCurves(job.files.live, autoencoder_train.curve_point)

    def report(event: ProgressEvent) -> None:
        live(event)
        if event.message == HELD_OUT:
            numbers = " ".join(f"{k}={v:.4g}" for k, v in event.metrics.items())
            logger.info(f"{event.task}: step {event.done}/{event.total} held-out {numbers}")
        else:  # a curve point is also the progress line (its marker is not shown)
            bar(dataclasses.replace(event, message="") if event.message == CURVE else event)

    return report


@task(task_run_name="train-{job.unit}", cache_policy=NO_CACHE)
def train_unit(job: autoencoder_job.AutoencoderJob) -> dict:
    return autoencoder_train.train(job, progress=_report(job), log=get_run_logger().info)


@task(task_run_name="export-{job.unit}", cache_policy=NO_CACHE)
def export_unit(job: autoencoder_job.AutoencoderJob, out_dir: Path) -> dict:
    """Export, then the curves written afresh from the finished run's history (read before `export`
    retires the checkpoints); their summary leaves out the names metrics.json reports."""
    series = autoencoder_train.curve_series(job)
    metrics = autoencoder_train.export(job, out_dir, log=get_run_logger().info)
    LiveCurves(AutoencoderFiles(Path(out_dir)).live, autoencoder_train.curve_point).rewrite(series, metrics)
    return metrics


@flow(name="train_autoencoder", log_prints=True)
def train_autoencoder(
    unit: str,
    dataset: DatasetConfig,
    autoencoder: AutoencoderConfig,
    train: TrainAutoencoderConfig,
    run: RunConfig,
    paths: PathsConfig,
    lpips_vgg16: Path | None,
) -> dict:
    """Train the autoencoder `<dataset>-<modality>-<context|future>` (resuming if interrupted) and
    write `<models>/<unit>/`: autoencoder.pt, metrics.json, reconstruction.png, dvclive/ (the curves)."""
    job = plan_autoencoder(unit, dataset, autoencoder, train, run, paths, lpips_vgg16)
    train_unit(job)
    metrics = export_unit(job, job.files.root)
    publish_table(f"{unit}-autoencoder", [{"unit": unit, **metrics}], f"Autoencoder {unit}: held-out reconstruction")
    return metrics


def train_autoencoder_worker(unit: str, **sections) -> dict:
    """A rank > 0 of the `train_autoencoder` stage under torchrun: plan and train with the flow's
    keyword arguments, without Prefect tasks (rank 0 runs the flow, reports and exports)."""
    return autoencoder_train.train(autoencoder_job.plan(unit, **sections))
