"""DVC stage `train_joint@<dataset>`: the stage-2 joint diffusion model of a dataset."""

import sys

from stages._entry import StageSpec, run

SPEC = StageSpec(
    name="train_joint",
    fanout="joint",
    sections=lambda name: (f"datasets.{name}", "unet", "diffusion", "joint", "train_joint", "run", "paths"),
    flow="pipelines.diffusion:train_joint",
    worker="syncvp.training.diffusion_train:train_joint_worker",
    arguments=lambda p, name: {"name": name, "dataset": p(f"datasets.{name}"), "unet": p("unet"),
                               "diffusion": p("diffusion"), "joint": p("joint"), "train": p("train_joint"),
                               "run": p("run"), "paths": p("paths")},
)

if __name__ == "__main__":
    sys.exit(run(SPEC))
