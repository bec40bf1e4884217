"""DVC stage `prepare@<dataset>`: raw inputs -> clip stores (+ summary.json, preview.png)."""

import sys

from stages._entry import StageSpec, run


def flow():
    """The stage's Prefect flow (imported only once the params are checked: it loads Prefect)."""
    from pipelines.prepare import prepare

    return prepare


SPEC = StageSpec(
    name="prepare",
    fanout="prepare",
    sections=lambda ds: (f"datasets.{ds}", "paths"),
    flow=flow,
    arguments=lambda p, ds: {"dataset": ds, "config": p(f"datasets.{ds}"), "paths": p("paths")},
)

if __name__ == "__main__":
    sys.exit(run(SPEC))
