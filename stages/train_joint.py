"""DVC stage `train_joint@<dataset>`: the stage-2 joint diffusion model of a dataset."""

import sys

from stages._entry import StageSpec, run


def flow():
    """The stage's Prefect flow (imported only once the params are checked: it loads Prefect)."""
    from pipelines.train_joint import train_joint

    return train_joint


def worker():
    """The call of ranks > 0 under torchrun: the flow's training without Prefect tasks."""
    from pipelines.train_joint import train_joint_worker

    return train_joint_worker


SPEC = StageSpec(
    name="train_joint",
    fanout="joint",
    sections=lambda name: (f"datasets.{name}", "unet", "diffusion", "joint", "train_joint", "run", "paths"),
    flow=flow,
    worker=worker,
    arguments=lambda p, name: {
        "name": name,
        "dataset": p(f"datasets.{name}"),
        "unet": p.model("unet", name),
        "diffusion": p("diffusion"),
        "joint": p("joint"),
        "train": p("train_joint"),
        "run": p("run"),
        "paths": p("paths"),
    },
)

if __name__ == "__main__":
    sys.exit(run(SPEC))
