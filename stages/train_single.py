"""DVC stage `train_single@<dataset>-<modality>`: one stage-1 latent diffusion model."""

import sys

from stages._entry import StageSpec, run
from syncvp.config import parse_unit


def _dataset(unit: str) -> str:
    return parse_unit(unit)[0]


SPEC = StageSpec(
    name="train_single",
    fanout="single",
    sections=lambda unit: (f"datasets.{_dataset(unit)}", "unet", "diffusion", "train_single", "run", "paths"),
    flow="pipelines.diffusion:train_single",
    worker="syncvp.training.diffusion_train:train_single_worker",
    arguments=lambda p, unit: {"unit": unit, "dataset": p(f"datasets.{_dataset(unit)}"), "unet": p("unet"),
                               "diffusion": p("diffusion"), "train": p("train_single"), "run": p("run"),
                               "paths": p("paths")},
)

if __name__ == "__main__":
    sys.exit(run(SPEC))
