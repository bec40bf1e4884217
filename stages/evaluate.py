"""DVC stage `evaluate@<dataset>`: rollout on the test split, metrics, plots and samples."""

import sys

from stages._entry import StageSpec, run
from syncvp.config import WeightsConfig


def _metric_weights(i3d, lpips_alexnet) -> WeightsConfig:
    """The weights evaluation reads (FVD, LPIPS); the others are not its inputs."""
    return WeightsConfig(
        depth_anything_vits=None,
        depth_anything_vitb=None,
        depth_anything_vitl=None,
        i3d=i3d,
        lpips_alexnet=lpips_alexnet,
        lpips_vgg16=None,
    )


def flow():
    """The stage's Prefect flow (imported only once the params are checked: it loads Prefect)."""
    from pipelines.evaluate import evaluate

    return evaluate


SPEC = StageSpec(
    name="evaluate",
    fanout="joint",  # trained datasets with a joint model (dvc.yaml lists their stage-1 units as deps)
    sections=lambda ds: (
        f"datasets.{ds}",
        "evaluate",
        "sampling",
        "run",
        "paths",
        "weights.i3d",
        "weights.lpips_alexnet",
    ),
    flow=flow,
    arguments=lambda p, ds: {
        "dataset": ds,
        "config": p(f"datasets.{ds}"),
        "evaluate": p("evaluate"),
        "sampling": p("sampling"),
        "paths": p("paths"),
        "run": p("run"),
        "weights": _metric_weights(p("weights.i3d"), p("weights.lpips_alexnet")),
    },
)

if __name__ == "__main__":
    sys.exit(run(SPEC))
