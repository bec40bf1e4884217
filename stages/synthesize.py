"""DVC stage `synthesize@<dataset>`: generate a synthetic dataset from its seed."""

import sys

from stages._entry import StageSpec, run


def flow():
    """The stage's Prefect flow (imported only once the params are checked: it loads Prefect)."""
    from pipelines.synthesize import synthesize

    return synthesize


SPEC = StageSpec(
    name="synthesize",
    fanout="synthesize",
    sections=lambda ds: (f"datasets.{ds}", "paths"),
    flow=flow,
    arguments=lambda p, ds: {"dataset": ds, "config": p(f"datasets.{ds}"), "paths": p("paths")},
)

if __name__ == "__main__":
    sys.exit(run(SPEC))
