"""The Prefect tasks both diffusion training flows share (`pipelines.train_single`,
`pipelines.train_joint`): train a planned job, export its model.

Like `train_autoencoder`, training is not cached by Prefect (DVC decides when a stage reruns); it
resumes from its own checkpoint in `<models>/<unit>/work`, which also keeps the latent cache.
"""

from __future__ import annotations

from functools import partial

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipelines.live import LiveCurves
from pipelines.reporting import PrefectProgress
from syncvp.progress import CURVE, ProgressEvent
from syncvp.training import diffusion_job, diffusion_train


@task(task_run_name="train-{job.unit}", cache_policy=NO_CACHE)
def train_unit(job: diffusion_job.DiffusionJob) -> dict:
    title = "stage-1 diffusion model" if job.kind == "single" else "joint diffusion model"
    bar = PrefectProgress(f"{job.unit}-{job.kind}-train", f"Training the {title} {job.unit}")
    live = LiveCurves(job.files.live, partial(diffusion_train.curve_point, job))
    logger = get_run_logger()

    def progress(event: ProgressEvent) -> None:
        live(event)  # the loss curves, step-wise with DVCLive (`<models>/<unit>/dvclive/`)
        if event.message != CURVE:  # the curve points are not progress lines
            bar(event)

    return diffusion_train.train(job, progress=progress, log=logger.info, warn=logger.warning)


@task(task_run_name="export-{job.unit}", cache_policy=NO_CACHE)
def export_unit(job: diffusion_job.DiffusionJob) -> dict:
    """Export, then the loss curves written afresh from the finished run's history (read before
    `export` retires the checkpoint); their summary leaves out the names metrics.json reports."""
    series = diffusion_train.curve_series(job)
    metrics = diffusion_train.export(job, log=get_run_logger().info)
    LiveCurves(job.files.live, partial(diffusion_train.curve_point, job)).rewrite(series, metrics)
    return metrics
