"""DVC stage `synthesize@<dataset>`: generate a synthetic dataset from its seed."""

import sys

from stages._entry import StageSpec, run

SPEC = StageSpec(
    name="synthesize",
    fanout="synthesize",
    sections=lambda ds: (f"datasets.{ds}", "paths"),
    flow="pipelines.data:synthesize",
    arguments=lambda p, ds: {"dataset": ds, "config": p(f"datasets.{ds}"), "paths": p("paths")},
)

if __name__ == "__main__":
    sys.exit(run(SPEC))
