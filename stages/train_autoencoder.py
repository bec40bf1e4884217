"""DVC stage `train_autoencoder@<dataset>-<modality>-<context|future>`: one projected autoencoder."""

import sys

from stages._entry import StageSpec, run
from syncvp.config import parse_unit


def _dataset(unit: str) -> str:
    return parse_unit(unit)[0]


def flow():
    """The stage's Prefect flow (imported only once the params are checked: it loads Prefect)."""
    from pipelines.train_autoencoder import train_autoencoder

    return train_autoencoder


def worker():
    """The call of ranks > 0 under torchrun: the flow's training without Prefect tasks."""
    from pipelines.train_autoencoder import train_autoencoder_worker

    return train_autoencoder_worker


SPEC = StageSpec(
    name="train_autoencoder",
    fanout="autoencoders",
    sections=lambda unit: (
        f"datasets.{_dataset(unit)}",
        "autoencoder",
        "train_autoencoder",
        "run",
        "paths",
        "weights.lpips_vgg16",
    ),
    flow=flow,
    worker=worker,
    arguments=lambda p, unit: {
        "unit": unit,
        "dataset": p(f"datasets.{_dataset(unit)}"),
        "autoencoder": p.model("autoencoder", _dataset(unit)),
        "train": p("train_autoencoder"),
        "run": p("run"),
        "paths": p("paths"),
        "lpips_vgg16": p("weights.lpips_vgg16"),
    },
)

if __name__ == "__main__":
    sys.exit(run(SPEC))
