"""The `train_joint` flow: the stage-2 joint model of a dataset. `train_joint_worker` is what the
other ranks of a torchrun launch of the stage call (`stages._entry`).

Like `train_autoencoder`, training is not cached by Prefect (DVC decides when a stage reruns); it
resumes from its own checkpoint in `<models>/<unit>/work`, which also keeps the latent cache.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipelines.diffusion_tasks import export_unit, train_unit
from pipelines.reporting import publish_table
from syncvp.config import DatasetConfig, PathsConfig, RunConfig
from syncvp.config.diffusion import DiffusionConfig, JointConfig, UNetConfig
from syncvp.config.train_diffusion import TrainJointConfig
from syncvp.training import diffusion_job, diffusion_train


@task(task_run_name="plan-{name}", cache_policy=NO_CACHE)
def plan_joint(
    name: str,
    dataset: DatasetConfig,
    unet: UNetConfig,
    diffusion: DiffusionConfig,
    joint: JointConfig,
    train: TrainJointConfig,
    run: RunConfig,
    paths: PathsConfig,
) -> diffusion_job.DiffusionJob:
    return diffusion_job.plan_joint(
        name, dataset=dataset, unet=unet, diffusion=diffusion, joint=joint, train=train, run=run, paths=paths
    )


@flow(name="train_joint", log_prints=True)
def train_joint(
    name: str,
    dataset: DatasetConfig,
    unet: UNetConfig,
    diffusion: DiffusionConfig,
    joint: JointConfig,
    train: TrainJointConfig,
    run: RunConfig,
    paths: PathsConfig,
) -> dict:
    """Train the joint model of dataset `name` (from the stage-1 models or from scratch) and write
    `<models>/<name>/`: joint.pt (EMA weights), metrics.json, loss.png, plots/context.tsv, dvclive/ (the loss curves)."""
    job = plan_joint(name, dataset, unet, diffusion, joint, train, run, paths)
    train_unit(job)
    metrics = export_unit(job)
    publish_table(f"{name}-joint", [{"dataset": name, **metrics}], f"Joint diffusion model {name}")
    return metrics


def train_joint_worker(name: str, **sections) -> dict:
    """A rank > 0 of the `train_joint` stage under torchrun: plan and train, without Prefect tasks."""
    return diffusion_train.train(diffusion_job.plan_joint(name, **sections))
