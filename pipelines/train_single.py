"""The `train_single` flow: one stage-1 diffusion model per flow run (a dataset x modality unit).
`train_single_worker` is what the other ranks of a torchrun launch of the stage call
(`stages._entry`).

Like `train_autoencoder`, training is not cached by Prefect (DVC decides when a stage reruns); it
resumes from its own checkpoint in `<models>/<unit>/work`, which also keeps the latent cache.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipelines.diffusion_tasks import export_unit, train_unit
from pipelines.reporting import publish_table
from syncvp.config import DatasetConfig, PathsConfig, RunConfig
from syncvp.config.diffusion import DiffusionConfig, UNetConfig
from syncvp.config.train_diffusion import TrainSingleConfig
from syncvp.training import diffusion_job, diffusion_train


@task(task_run_name="plan-{unit}", cache_policy=NO_CACHE)
def plan_single(
    unit: str,
    dataset: DatasetConfig,
    unet: UNetConfig,
    diffusion: DiffusionConfig,
    train: TrainSingleConfig,
    run: RunConfig,
    paths: PathsConfig,
) -> diffusion_job.DiffusionJob:
    return diffusion_job.plan_single(
        unit, dataset=dataset, unet=unet, diffusion=diffusion, train=train, run=run, paths=paths
    )


@flow(name="train_single", log_prints=True)
def train_single(
    unit: str,
    dataset: DatasetConfig,
    unet: UNetConfig,
    diffusion: DiffusionConfig,
    train: TrainSingleConfig,
    run: RunConfig,
    paths: PathsConfig,
) -> dict:
    """Train the stage-1 model `<dataset>-<modality>` (resuming if interrupted) and write
    `<models>/<unit>/`: diffusion.pt (EMA weights), metrics.json, loss.png, plots/context.tsv, dvclive/ (the loss curves)."""
    job = plan_single(unit, dataset, unet, diffusion, train, run, paths)
    train_unit(job)
    metrics = export_unit(job)
    publish_table(f"{unit}-single", [{"unit": unit, **metrics}], f"Stage-1 diffusion model {unit}")
    return metrics


def train_single_worker(unit: str, **sections) -> dict:
    """A rank > 0 of the `train_single` stage under torchrun: plan and train with the flow's keyword
    arguments, without Prefect tasks (rank 0 runs the flow, reports and exports)."""
    return diffusion_train.train(diffusion_job.plan_single(unit, **sections))
