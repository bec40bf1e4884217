"""DVC stage `train_single@<dataset>-<modality>`: one stage-1 latent diffusion model."""

import sys

from stages._entry import StageSpec, run
from syncvp.config import parse_unit


def _dataset(unit: str) -> str:
    return parse_unit(unit)[0]


def flow():
    """The stage's Prefect flow (imported only once the params are checked: it loads Prefect)."""
    from pipelines.train_single import train_single

    return train_single


def worker():
    """The call of ranks > 0 under torchrun: the flow's training without Prefect tasks."""
    from pipelines.train_single import train_single_worker

    return train_single_worker


SPEC = StageSpec(
    name="train_single",
    fanout="single",
    sections=lambda unit: (f"datasets.{_dataset(unit)}", "unet", "diffusion", "train_single", "run", "paths"),
    flow=flow,
    worker=worker,
    arguments=lambda p, unit: {
        "unit": unit,
        "dataset": p(f"datasets.{_dataset(unit)}"),
        "unet": p.model("unet", _dataset(unit)),
        "diffusion": p("diffusion"),
        "train": p("train_single"),
        "run": p("run"),
        "paths": p("paths"),
    },
)

if __name__ == "__main__":
    sys.exit(run(SPEC))
