"""DVC stage `pseudo_depth@<dataset>`: Depth-Anything-V2 pseudo-depth of every raw video."""

import sys

from stages._entry import StageSpec, run

ENCODERS = ("vits", "vitb", "vitl")  # the weights entry read depends on the dataset's encoder


def arguments(p, ds: str) -> dict:
    config = p(f"datasets.{ds}")
    return {
        "dataset": ds,
        "config": config,
        "paths": p("paths"),
        "device": p("run.device"),
        "threads": p("run.threads"),
        "weights": p(f"weights.{config.pseudo_depth.weights_key}"),
    }


def flow():
    """The stage's Prefect flow (imported only once the params are checked: it loads Prefect)."""
    from pipelines.pseudo_depth import pseudo_depth

    return pseudo_depth


SPEC = StageSpec(
    name="pseudo_depth",
    fanout="pseudo_depth",
    sections=lambda ds: (
        f"datasets.{ds}",
        "paths",
        "run.device",
        "run.threads",
        *(f"weights.depth_anything_{e}" for e in ENCODERS),
    ),
    flow=flow,
    arguments=arguments,
)

if __name__ == "__main__":
    sys.exit(run(SPEC))
