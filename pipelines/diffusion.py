"""Diffusion training flows. `train_single`: one stage-1 model per flow run (a dataset x modality
unit); `train_joint`: the stage-2 joint model of a dataset. `train_single_worker` and
`train_joint_worker` are what the other ranks of a torchrun launch of those stages call
(`stages._entry`).

Like `train_autoencoder`, training is not cached by Prefect (DVC decides when a stage reruns); it
resumes from its own checkpoint in `<models>/<unit>/work`, which also keeps the latent cache.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipelines.reporting import PrefectProgress, publish_table
from syncvp.config import DatasetConfig, PathsConfig, RunConfig
from syncvp.config.diffusion import DiffusionConfig, JointConfig, UNetConfig
from syncvp.config.train_diffusion import TrainJointConfig, TrainSingleConfig
from syncvp.training import diffusion_job, diffusion_train


@task(task_run_name="plan-{unit}", cache_policy=NO_CACHE)
def plan_single(unit: str, dataset: DatasetConfig, unet: UNetConfig, diffusion: DiffusionConfig,
                train: TrainSingleConfig, run: RunConfig, paths: PathsConfig) -> diffusion_job.DiffusionJob:
    return diffusion_job.plan_single(unit, dataset=dataset, unet=unet, diffusion=diffusion, train=train, run=run,
                                     paths=paths)


@task(task_run_name="plan-{name}", cache_policy=NO_CACHE)
def plan_joint(name: str, dataset: DatasetConfig, unet: UNetConfig, diffusion: DiffusionConfig, joint: JointConfig,
               train: TrainJointConfig, run: RunConfig, paths: PathsConfig) -> diffusion_job.DiffusionJob:
    return diffusion_job.plan_joint(name, dataset=dataset, unet=unet, diffusion=diffusion, joint=joint, train=train,
                                    run=run, paths=paths)


@task(task_run_name="train-{job.unit}", cache_policy=NO_CACHE)
def train_unit(job: diffusion_job.DiffusionJob) -> dict:
    title = "stage-1 diffusion model" if job.kind == "single" else "joint diffusion model"
    progress = PrefectProgress(f"{job.unit}-{job.kind}-train", f"Training the {title} {job.unit}")
    logger = get_run_logger()
    return diffusion_train.train(job, progress=progress, log=logger.info, warn=logger.warning)


@task(task_run_name="export-{job.unit}", cache_policy=NO_CACHE)
def export_unit(job: diffusion_job.DiffusionJob) -> dict:
    return diffusion_train.export(job, log=get_run_logger().info)


@flow(name="train_single", log_prints=True)
def train_single(unit: str, dataset: DatasetConfig, unet: UNetConfig, diffusion: DiffusionConfig,
                 train: TrainSingleConfig, run: RunConfig, paths: PathsConfig) -> dict:
    """Train the stage-1 model `<dataset>-<modality>` (resuming if interrupted) and write
    `<models>/<unit>/`: diffusion.pt (EMA weights), metrics.json, loss.png, plots/loss.tsv."""
    job = plan_single(unit, dataset, unet, diffusion, train, run, paths)
    train_unit(job)
    metrics = export_unit(job)
    publish_table(f"{unit}-single", [{"unit": unit, **metrics}], f"Stage-1 diffusion model {unit}")
    return metrics


@flow(name="train_joint", log_prints=True)
def train_joint(name: str, dataset: DatasetConfig, unet: UNetConfig, diffusion: DiffusionConfig, joint: JointConfig,
                train: TrainJointConfig, run: RunConfig, paths: PathsConfig) -> dict:
    """Train the joint model of dataset `name` (from the stage-1 models or from scratch) and write
    `<models>/<name>/`: joint.pt (EMA weights), metrics.json, loss.png, plots/loss.tsv."""
    job = plan_joint(name, dataset, unet, diffusion, joint, train, run, paths)
    train_unit(job)
    metrics = export_unit(job)
    publish_table(f"{name}-joint", [{"dataset": name, **metrics}], f"Joint diffusion model {name}")
    return metrics


def train_single_worker(unit: str, **sections) -> dict:
    """A rank > 0 of the `train_single` stage under torchrun: plan and train with the flow's keyword
    arguments, without Prefect tasks (rank 0 runs the flow, reports and exports)."""
    return diffusion_train.train(diffusion_job.plan_single(unit, **sections))


def train_joint_worker(name: str, **sections) -> dict:
    """A rank > 0 of the `train_joint` stage under torchrun: plan and train, without Prefect tasks."""
    return diffusion_train.train(diffusion_job.plan_joint(name, **sections))
